/// The trainer's inference-server client: the vLLM and SGLang request shapes it sends and the answers
/// it parses (fixtures written from their API documentation), retries and clear errors naming the URL,
/// the same tokens through `simko serve` as in process, and the weight sync with its stale-weight probe.
module SimKO.Tests.RolloutClientTests

open System
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Checkpoints
open SimKO.Tests.ServeFixture

let private request = GenerateRequest([| [| 5; 6; 7 |]; [| 8; 9 |] |], 2, 0.8, 0.95, 20, 16, 42L, StopTokenIds = [| 151645 |])

/// A fake server in a handler: records each request body and answers from a function of (path, body).
type private Fake(answer: string -> JsonNode -> int * string) =
    inherit HttpMessageHandler()
    member val Bodies = System.Collections.Concurrent.ConcurrentQueue<string * JsonNode>()
    override this.SendAsync(req, _) =
        let body = if isNull req.Content then JsonObject() :> JsonNode else JsonNode.Parse(req.Content.ReadAsStringAsync().Result)
        this.Bodies.Enqueue((req.RequestUri.AbsolutePath, body))
        let status, text = answer req.RequestUri.AbsolutePath body
        Task.FromResult(new HttpResponseMessage(enum<HttpStatusCode> status, Content = new StringContent(text, Encoding.UTF8, "application/json")))

/// vLLM's /v1/completions answer for n = 2 with logprobs and return_tokens_as_token_ids (choices may come in any order).
let private vllmAnswer = """
{"id": "cmpl-3f1", "object": "text_completion", "created": 1730000000, "model": "Qwen/Qwen2.5-Math-7B",
 "choices": [
  {"index": 1, "text": "4", "logprobs": {"text_offset": [0, 12], "token_logprobs": [-0.25, -0.125],
     "tokens": ["token_id:19", "token_id:151645"], "top_logprobs": [{"token_id:19": -0.25}, {"token_id:151645": -0.125}]},
   "finish_reason": "stop", "stop_reason": 151645, "prompt_logprobs": null},
  {"index": 0, "text": "3", "logprobs": {"text_offset": [0], "token_logprobs": [-1.5],
     "tokens": ["token_id:18"], "top_logprobs": [{"token_id:18": -1.5}]},
   "finish_reason": "length", "stop_reason": null, "prompt_logprobs": null}],
 "usage": {"prompt_tokens": 3, "total_tokens": 6, "completion_tokens": 3}}"""

/// SGLang's native /generate answer for a batch of two inputs with return_logprob.
let private sglangAnswer = """
[{"text": "4", "output_ids": [19, 151645],
  "meta_info": {"id": "a1", "finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 3, "completion_tokens": 2,
                "cached_tokens": 0, "output_token_logprobs": [[-0.25, 19, null], [-0.125, 151645, null]]}},
 {"text": "3", "output_ids": [18],
  "meta_info": {"id": "a2", "finish_reason": {"type": "length", "length": 1}, "prompt_tokens": 3, "completion_tokens": 1,
                "cached_tokens": 3, "output_token_logprobs": [[-1.5, 18, null]]}}]"""

let private ids (struct (i: int[], _: float32[])) = i
let private lps (struct (_: int[], l: float32[])) = l

let private client server (handler: HttpMessageHandler) =
    new ServerRolloutClient(RolloutClientOptions("http://10.1.2.3:8000", server, Model = "m", Retries = 2, BackoffSeconds = 0.01), handler)

let tests =
    testList "rollout client" [
        testCase "vLLM: the completions request carries token ids, n, seed, logprobs and asks for token ids" <| fun () ->
            let b = ServerRolloutClient.CompletionBody("m", [| 5; 6; 7 |], request, 99L)
            Expect.equal (b.["prompt"].ToJsonString()) "[5,6,7]" "token-id prompt"
            Expect.equal (b.["n"].GetValue<int>()) 2 "n = group size"
            Expect.equal (b.["seed"].GetValue<int64>()) 99L "seed"
            Expect.equal (b.["logprobs"].GetValue<int>()) 1 "logprobs"
            Expect.isTrue (b.["return_tokens_as_token_ids"].GetValue<bool>()) "token ids"
            Expect.equal (b.["top_k"].GetValue<int>()) 20 "top_k"
            Expect.equal (b.["stop_token_ids"].ToJsonString()) "[151645]" "stop ids"
            Expect.isTrue (b.["ignore_eos"].GetValue<bool>()) "the trainer names every stop token"
            Expect.equal ((ServerRolloutClient.CompletionBody("m", [| 1 |], GenerateRequest([| [| 1 |] |], 1, 1.0, 1.0, 0, 4, 0L), 1L)).["top_k"].GetValue<int>()) -1 "top_k off is -1"

        testCase "vLLM: the answer parses into ids and log-probs in choice-index order" <| fun () ->
            let parsed = ServerRolloutClient.ParseCompletion(JsonNode.Parse vllmAnswer, 2, "u")
            Expect.equal (ids parsed.[0]) [| 18 |] "choice 0"
            Expect.equal (ids parsed.[1]) [| 19; 151645 |] "choice 1, with its stop token"
            Expect.equal (lps parsed.[1]) [| -0.25f; -0.125f |] "log-probs"

        testCase "a wrong-shaped answer is an error naming the URL and what was expected" <| fun () ->
            let noIds = vllmAnswer.Replace("token_id:19", "Hello")
            let check (text: string) n (want: string) =
                try
                    ServerRolloutClient.ParseCompletion(JsonNode.Parse text, n, "http://h:1/v1/completions") |> ignore
                    failtest "expected an error"
                with :? RolloutServerException as e ->
                    Expect.stringContains e.Message "http://h:1/v1/completions" "names the URL"
                    Expect.stringContains e.Message want "says what was expected"
            check noIds 2 "token_id:N"
            check vllmAnswer 3 "expected n = 3"
            check """{"choices": [{"index": 0, "text": "x"}]}""" 1 "logprobs is missing"
            check """{"object": "error"}""" 1 "no 'choices'"

        testCase "SGLang: /generate gets n copies with per-sample seeds, and its answer parses" <| fun () ->
            let b = ServerRolloutClient.SglangGenerateBody([| 5; 6; 7 |], request, 99L)
            Expect.equal (b.["input_ids"].ToJsonString()) "[[5,6,7],[5,6,7]]" "one input per sample"
            Expect.isTrue (b.["return_logprob"].GetValue<bool>()) "log-probs"
            let sp = b.["sampling_params"].AsArray()
            Expect.equal (sp.[0].["max_new_tokens"].GetValue<int>()) 16 "max_new_tokens"
            Expect.notEqual (sp.[0].["sampling_seed"].GetValue<int64>()) (sp.[1].["sampling_seed"].GetValue<int64>()) "a seed per sample"
            let parsed = ServerRolloutClient.ParseSglangGenerate(JsonNode.Parse sglangAnswer, 2, "u")
            Expect.equal (ids parsed.[0]) [| 19; 151645 |] "ids from the (logprob, id, text) triples"
            Expect.equal (lps parsed.[1]) [| -1.5f |] "log-probs"
            let bad = sglangAnswer.Replace("[-1.5, 18, null]", "[-1.5]")
            Expect.throwsT<RolloutServerException> (fun () -> ServerRolloutClient.ParseSglangGenerate(JsonNode.Parse bad, 2, "http://s:30000/generate") |> ignore) "a triple without its id"

        testCase "one request per prompt with the prompt's seed; 503 and 429 are retried, 400 is not" <| fun () ->
            let mutable failures = 0
            let fake = new Fake(fun path body ->
                if path = "/v1/completions" && Threading.Interlocked.Increment(&failures) <= 1 then 503, """{"error": {"message": "busy"}}"""
                else 200, vllmAnswer)
            use c = client RolloutServer.Vllm fake
            let out = c.Generate(request)
            Expect.equal out.Count 4 "2 prompts × 2"
            Expect.equal [ for g in out -> g.PromptIndex ] [ 0; 0; 1; 1 ] "grouped by prompt"
            let seeds = [ for _, b in fake.Bodies do if not (isNull b.["seed"]) then b.["seed"].GetValue<int64>() ] |> List.distinct |> List.sort
            Expect.equal seeds (List.sort [ RolloutSeeds.Prompt(42L, 0); RolloutSeeds.Prompt(42L, 1) ]) "per-prompt seeds"
            let refuse = new Fake(fun _ _ -> 400, """{"error": {"message": "bad field 'n'"}}""")
            use c2 = client RolloutServer.Vllm refuse
            Expect.throwsT<RolloutServerException> (fun () -> c2.Generate(request) |> ignore) "a 400 is an error"
            Expect.equal refuse.Bodies.Count 2 "a 400 is not retried (one request per prompt)"

        testCase "an unreachable server is an error naming the URL after the retries" <| fun () ->
            use c = new ServerRolloutClient(RolloutClientOptions("http://127.0.0.1:9", RolloutServer.Simko, Model = "m", Retries = 1, BackoffSeconds = 0.01, TimeoutSeconds = 5.0))
            try
                c.Generate(request) |> ignore
                failtest "expected an error"
            with :? RolloutServerException as e ->
                Expect.stringContains e.Message "http://127.0.0.1:9/v1/completions" "names the URL"
                Expect.stringContains e.Message "2 attempts" "after the retries"

        testCase "through simko serve: the same tokens as the in-process engine, weight sync and the stale-weight probe" <| fun () ->
            withServer options <| fun server model ->
                let req = GenerateRequest([| [| 65; 66; 67 |]; [| 68; 69 |]; [| 70 |] |], 3, 1.0, 1.0, 0, 8, 5L, StopTokenIds = [| 258 |])
                use c = new ServerRolloutClient(RolloutClientOptions(server.Url, RolloutServer.Simko, Concurrency = 2))
                let remote = c.Generate(req)
                use local = loadModel (tinyModel.Force())
                use engine = new ContinuousBatcher(local, 256, maxRows = 4)
                let inproc = engine.Generate(req)
                Expect.equal [ for g in remote -> g.PromptIndex, g.Tokens ] [ for g in inproc -> g.PromptIndex, g.Tokens ] "same tokens"
                for a, b in Seq.zip remote inproc do
                    for x, y in Seq.zip a.SamplerLogProbs b.SamplerLogProbs do Expect.isLessThan (abs (x - y)) 1e-4f "same log-probs"
                // sync: export other weights, the server loads them, the probe agrees with a policy holding them
                use other = loadModel (writeModel "tiny-sync" 21L)
                let tok = HfFolder.LoadTokenizer(tinyModel.Force())
                let out = IO.Path.Combine(root, "run")
                let sync = RolloutWeightSync(c, out, (fun dir -> HfFolder.Save(other, tok, dir)), ModelPolicy(other), [| 65; 66; 67; 68 |], 1e-4, NullLogger.Instance)
                for v in 1L .. 3L do Expect.equal (sync.Sync v) v "version"
                Expect.sequenceEqual (IO.Directory.GetDirectories(IO.Path.Combine(out, RolloutWeightSync.Folder)) |> Array.map IO.Path.GetFileName |> Array.sort) [| "2"; "3" |] "the last two are kept"
                // negative control: the trainer holds other weights than the server loaded
                let stale = RolloutWeightSync(c, out, (fun dir -> HfFolder.Save(other, tok, dir)), ModelPolicy(local), [| 65; 66; 67; 68 |], 1e-4, NullLogger.Instance)
                Expect.throwsT<StaleWeightsException> (fun () -> stale.Sync 4L |> ignore) "the probe catches weights that differ"
    ]
