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
            Expect.isTrue (b.["ignore_eos"].GetValue<bool>()) "the trainer names every stop token (vLLM's check_stop still tests stop_token_ids)"
            Expect.equal [ for f in [ "repetition_penalty"; "presence_penalty"; "frequency_penalty"; "min_p" ] -> b.[f].GetValue<float>() ] [ 1.0; 0.0; 0.0; 0.0 ]
                "neutral penalties and min_p, whatever generation_config.json says"
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
            for x in sp do
                Expect.isFalse (x.["ignore_eos"].GetValue<bool>()) "SGLang's check_finished skips stop_token_ids when ignore_eos is set"
                Expect.equal (x.["stop_token_ids"].ToJsonString()) "[151645]" "stop ids"
                Expect.equal [ for f in [ "repetition_penalty"; "presence_penalty"; "frequency_penalty"; "min_p" ] -> x.[f].GetValue<float>() ] [ 1.0; 0.0; 0.0; 0.0 ]
                    "neutral penalties and min_p"
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
            // a later share of the step (mini-batch 2, or another rank) draws from its step-wide prompts' streams, as in process
            let shifted = new Fake(fun _ _ -> 200, vllmAnswer)
            use c3 = client RolloutServer.Vllm shifted
            c3.Generate(GenerateRequest(request.Prompts, 2, 0.8, 0.95, 20, 16, 42L, StopTokenIds = [| 151645 |], PromptIndexBase = 5)) |> ignore
            let seeds3 = [ for _, b in shifted.Bodies do if not (isNull b.["seed"]) then b.["seed"].GetValue<int64>() ] |> List.distinct |> List.sort
            Expect.equal seeds3 (List.sort [ RolloutSeeds.Prompt(42L, 5); RolloutSeeds.Prompt(42L, 6) ]) "seeds of step-wide prompts 5 and 6"
            let refuse = new Fake(fun _ _ -> 400, """{"error": {"message": "bad field 'n'"}}""")
            use c2 = client RolloutServer.Vllm refuse
            Expect.throwsT<RolloutServerException> (fun () -> c2.Generate(request) |> ignore) "a 400 is an error"
            Expect.equal refuse.Bodies.Count 2 "a 400 is not retried (one request per prompt)"

        testCase "every response is cut after its first stop token, whatever the server returned" <| fun () ->
            // a server that ignored the stop token: the text past it must never reach the trainer
            let past = sglangAnswer.Replace("\"output_ids\": [19, 151645]", "\"output_ids\": [19, 151645, 7, 8]")
                                   .Replace("[[-0.25, 19, null], [-0.125, 151645, null]]", "[[-0.25, 19, null], [-0.125, 151645, null], [-3.0, 7, null], [-4.0, 8, null]]")
            use sg = client RolloutServer.Sglang (new Fake(fun _ _ -> 200, past))
            let out = sg.Generate(GenerateRequest([| [| 5; 6; 7 |] |], 2, 1.0, 1.0, 0, 16, 1L, StopTokenIds = [| 151645 |]))
            Expect.equal out.[0].Tokens [| 19; 151645 |] "cut after the stop token"
            Expect.equal out.[0].SamplerLogProbs [| -0.25f; -0.125f |] "log-probs cut with it"
            Expect.equal out.[1].Tokens [| 18 |] "a response without a stop token is kept whole"
            let vpast = vllmAnswer.Replace("\"tokens\": [\"token_id:18\"]", "\"tokens\": [\"token_id:151645\"]").Replace("\"token_id:19\", \"token_id:151645\"", "\"token_id:151645\", \"token_id:19\"")
            use vl = client RolloutServer.Vllm (new Fake(fun _ _ -> 200, vpast))
            let out = vl.Generate(GenerateRequest([| [| 5 |] |], 2, 1.0, 1.0, 0, 16, 1L, StopTokenIds = [| 151645 |]))
            Expect.equal [ for g in out -> g.Tokens ] [ [| 151645 |]; [| 151645 |] ] "vLLM answers are cut too"
            Expect.equal (ServerRolloutClient.CutAtFirstStop([| 1; 2 |], [| -1.0f; -2.0f |], [||]).ToTuple() |> fst) [| 1; 2 |] "no stop tokens: unchanged"

        testCase "an aborted answer is retried, and fails the step naming the request when the retries run out" <| fun () ->
            let aborted = vllmAnswer.Replace("\"finish_reason\": \"length\"", "\"finish_reason\": \"abort\"")
            let mutable calls = 0
            let once = new Fake(fun _ _ -> if Threading.Interlocked.Increment(&calls) = 1 then 200, aborted else 200, vllmAnswer)
            use c = client RolloutServer.Vllm once
            let out = c.Generate(GenerateRequest([| [| 5; 6 |] |], 2, 1.0, 1.0, 0, 16, 1L))
            Expect.equal once.Bodies.Count 2 "the aborted request was sent again"
            Expect.equal [ for g in out -> g.Tokens ] [ [| 18 |]; [| 19; 151645 |] ] "the finished answer is used"
            let check server (answer: string) (want: string) =
                let always = new Fake(fun _ _ -> 200, answer)
                use c = client server always
                try
                    c.Generate(GenerateRequest([| [| 5; 6 |] |], 2, 1.0, 1.0, 0, 16, 1L)) |> ignore
                    failtest "expected an error"
                with :? RolloutServerException as e ->
                    Expect.stringContains e.Message "prompt 0" "names the request"
                    Expect.stringContains e.Message "3 attempts" "after the retries (Retries = 2)"
                    Expect.stringContains e.Message want "says why"
                Expect.equal always.Bodies.Count 3 "one request and two retries"
            check RolloutServer.Vllm aborted "'abort'"
            // SGLang returns an abort without an error status as 200 (tokenizer_manager._handle_abort_finish_reason)
            let sgAbort = sglangAnswer.Replace("{\"type\": \"length\", \"length\": 1}", "{\"type\": \"abort\", \"message\": \"Abort before prefill\", \"status_code\": null}")
            check RolloutServer.Sglang sgAbort "abort"

        testCase "vLLM: every reload resets the prefix cache, and the probe catches KV kept from the old weights" <| fun () ->
            use model = loadModel (tinyModel.Force())
            let policy = ModelPolicy(model)
            let probe = [| 65; 66; 67; 68 |]
            let generated = [| 69; 70; 71; 72 |]
            // a fake vLLM: prompt log-prob (echo) requests skip the prefix cache and are always right; generated
            // tokens read the cached prefix, whose KV is the old weights' from the reload until the cache is reset
            let fake (resetWorks: bool) =
                let mutable stale = false
                let token (i: int) = JsonValue.Create(sprintf "token_id:%d" i) :> JsonNode
                let num (x: float32) = JsonValue.Create(float x) :> JsonNode
                new Fake(fun path body ->
                    match path with
                    | "/collective_rpc" -> stale <- true; 200, """{"results": [null]}"""
                    | "/reset_prefix_cache" -> (if resetWorks then stale <- false); 200, ""
                    | "/v1/completions" ->
                        let prompt = [| for x in body.["prompt"].AsArray() -> x.GetValue<int>() |]
                        let tokens, values =
                            if not (isNull body.["echo"]) && body.["echo"].GetValue<bool>() then
                                Array.append prompt [| 0 |], Array.append [| nanf |] (Array.append (SequenceScores.LogProbs(policy, prompt)) [| -1.0f |])
                            else
                                let all = SequenceScores.LogProbs(policy, Array.append prompt generated)
                                generated, all.[all.Length - generated.Length ..] |> Array.map (fun v -> if stale then v - 0.7f else v)
                        let lp = JsonObject()
                        lp.["tokens"] <- JsonArray(tokens |> Array.map token)
                        lp.["token_logprobs"] <- JsonArray(values |> Array.mapi (fun i v -> if Single.IsNaN v then null else num v))
                        let choice = JsonObject()
                        choice.["index"] <- JsonValue.Create 0
                        choice.["logprobs"] <- lp
                        choice.["finish_reason"] <- JsonValue.Create "length"
                        200, JsonObject(dict [ "choices", (JsonArray(choice) :> JsonNode) ]).ToJsonString()
                    | other -> 404, sprintf """{"error": "no route %s"}""" other)
            let sync (f: Fake) =
                let c = client RolloutServer.Vllm f
                RolloutWeightSync(c, IO.Path.Combine(root, sprintf "vllm-sync-%d" (f.GetHashCode())), (fun dir -> IO.Directory.CreateDirectory dir |> ignore),
                                  policy, probe, 1e-4, NullLogger.Instance)
            let good = fake true
            let s = sync good
            for v in 1L .. 2L do Expect.equal (s.Sync v) v "version"
            let paths = [ for p, _ in good.Bodies -> p ]
            Expect.equal (paths |> List.filter (fun p -> p <> "/v1/completions")) [ "/collective_rpc"; "/reset_prefix_cache"; "/collective_rpc"; "/reset_prefix_cache" ]
                "each reload is followed by a prefix-cache reset (its empty 200 body is success)"
            Expect.isLessThan s.LastGeneratedDifference 1e-4 "the generated tokens' log-probs were compared"
            // negative control: a reset that leaves the cache in place is caught, though the prompt log-probs agree
            let broken = sync (fake false)
            try
                broken.Sync 1L |> ignore
                failtest "expected the probe to fail"
            with :? StaleWeightsException as e ->
                Expect.stringContains e.Message "prefix" "says the prefix cache holds the old weights' KV"
                Expect.isLessThan broken.LastProbeDifference 1e-4 "the prompt log-probs alone cannot see it"

        testCase "adapter sync: vLLM and SGLang load each adapter folder under a new name after unloading the old one, every request names it, and the probe runs on it" <| fun () ->
            use model = loadModel (tinyModel.Force())
            model.AttachLora(LoraSettings(2, 4.0, LoraSettings.AllProjections), 5L)
            let policy = ModelPolicy(model)
            let probe = [| 65; 66; 67; 68 |]
            let generated = [| 69; 70 |]
            let num (x: float32) = JsonValue.Create(float x) :> JsonNode
            let triple (lp: JsonNode) (id: int) = JsonArray(lp, JsonValue.Create id, null) :> JsonNode
            /// A fake server: its load/unload routes keep the set of loaded names; it samples with the policy when a request
            /// selects the adapter loaded last, and 0.5 nats lower otherwise (the base, or a server that ignores the selection).
            let fake (server: RolloutServer) (honoursSelection: bool) =
                let mutable loaded = Set.empty
                let mutable last = ""
                let shift (selected: string) (values: float32[]) =
                    values |> Array.map (fun v -> if honoursSelection && selected = last && loaded.Contains selected then v else v - 0.5f)
                new Fake(fun path body ->
                    let str (k: string) = if isNull body.[k] then null else body.[k].GetValue<string>()
                    match server, path with
                    | RolloutServer.Vllm, "/v1/load_lora_adapter" ->
                        loaded <- loaded.Add(str "lora_name"); last <- str "lora_name"
                        200, sprintf "Success: LoRA adapter '%s' added successfully." (str "lora_name")
                    | RolloutServer.Vllm, "/v1/unload_lora_adapter" ->
                        if loaded.Contains(str "lora_name") then
                            loaded <- loaded.Remove(str "lora_name")
                            200, sprintf "Success: LoRA adapter '%s' removed successfully." (str "lora_name")
                        else 404, """{"error": {"message": "cannot be found", "code": 404}}"""
                    | RolloutServer.Sglang, "/load_lora_adapter" ->
                        loaded <- loaded.Add(str "lora_name"); last <- str "lora_name"
                        200, """{"success": true, "error_message": "", "loaded_adapters": {}}"""
                    | RolloutServer.Sglang, "/unload_lora_adapter" ->
                        loaded <- loaded.Remove(str "lora_name")
                        200, """{"success": true, "error_message": "", "loaded_adapters": {}}"""
                    | RolloutServer.Vllm, "/v1/completions" ->
                        let prompt = [| for x in body.["prompt"].AsArray() -> x.GetValue<int>() |]
                        let tokens, values =
                            if not (isNull body.["echo"]) && body.["echo"].GetValue<bool>() then
                                Array.append prompt [| 0 |], Array.append [| nanf |] (Array.append (shift (str "model") (SequenceScores.LogProbs(policy, prompt))) [| -1.0f |])
                            else
                                let all = SequenceScores.LogProbs(policy, Array.append prompt generated)
                                generated, shift (str "model") all.[all.Length - generated.Length ..]
                        let lp = JsonObject()
                        lp.["tokens"] <- JsonArray(tokens |> Array.map (fun i -> JsonValue.Create(sprintf "token_id:%d" i) :> JsonNode))
                        lp.["token_logprobs"] <- JsonArray(values |> Array.map (fun v -> if Single.IsNaN v then null else num v))
                        let choices = JsonArray()
                        for k in 0 .. (if isNull body.["n"] then 1 else body.["n"].GetValue<int>()) - 1 do
                            choices.Add(JsonObject(dict [ "index", JsonValue.Create k :> JsonNode; "logprobs", lp.DeepClone(); "finish_reason", JsonValue.Create "length" ]))
                        200, JsonObject(dict [ "choices", (choices :> JsonNode) ]).ToJsonString()
                    | RolloutServer.Sglang, "/generate" ->
                        let inputs = body.["input_ids"].AsArray()
                        let first = match inputs.[0] with :? JsonArray as a -> a | _ -> inputs
                        let prompt = [| for x in first -> x.GetValue<int>() |]
                        if not (isNull body.["logprob_start_len"]) then
                            let lps = shift (str "lora_path") (SequenceScores.LogProbs(policy, prompt))
                            let items = JsonArray(Array.append [| triple null prompt.[0] |] (Array.init lps.Length (fun t -> triple (num lps.[t]) prompt.[t + 1])))
                            200, JsonObject(dict [ "meta_info", (JsonObject(dict [ "input_token_logprobs", (items :> JsonNode) ]) :> JsonNode) ]).ToJsonString()
                        else
                            let all = SequenceScores.LogProbs(policy, Array.append prompt generated)
                            let lps = shift (str "lora_path") all.[all.Length - generated.Length ..]
                            let one () =
                                let meta = JsonObject()
                                meta.["finish_reason"] <- JsonObject(dict [ "type", JsonValue.Create "length" :> JsonNode ])
                                meta.["output_token_logprobs"] <- JsonArray(Array.init generated.Length (fun t -> triple (num lps.[t]) generated.[t]))
                                JsonObject(dict [ "output_ids", ints generated; "meta_info", (meta :> JsonNode) ]) :> JsonNode
                            200, JsonArray([| for _ in 1 .. inputs.Count -> one () |]).ToJsonString()
                    | _, other -> 404, sprintf """{"error": "no route %s"}""" other)
            for server, load, unload, field in [ RolloutServer.Vllm, "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "model"
                                                 RolloutServer.Sglang, "/load_lora_adapter", "/unload_lora_adapter", "lora_path" ] do
                let f = fake server true
                use c = client server f
                let out = IO.Path.Combine(root, sprintf "adapter-sync-%A" server)
                let sync = RolloutWeightSync(c, out, (fun dir -> PeftAdapter.Save(model, dir, "tiny")), policy, probe, 1e-4, NullLogger.Instance, SyncPayload.Adapter)
                for v in 0L .. 1L do Expect.equal (sync.Sync v) v "version"
                let out1 = c.Generate(GenerateRequest([| probe |], 2, 1.0, 1.0, 0, 2, 9L))
                Expect.equal out1.Count 2 (sprintf "%A: n = 2 after the sync" server)
                let calls = List.ofSeq f.Bodies
                let folder v = IO.Path.GetFullPath(IO.Path.Combine(out, RolloutWeightSync.Folder, string v))
                let routes = [ for p, b in calls do if p = load || p = unload then p, b.ToJsonString() ]
                Expect.equal routes
                    [ load, JsonObject(dict [ "lora_name", JsonValue.Create(sync.AdapterName 0L) :> JsonNode; "lora_path", JsonValue.Create(folder 0) ]).ToJsonString()
                      unload, JsonObject(dict [ "lora_name", JsonValue.Create(sync.AdapterName 0L) :> JsonNode ]).ToJsonString()
                      load, JsonObject(dict [ "lora_name", JsonValue.Create(sync.AdapterName 1L) :> JsonNode; "lora_path", JsonValue.Create(folder 1) ]).ToJsonString() ]
                    (sprintf "%A: load v0; then unload v0 before loading v1 under a new name" server)
                Expect.notEqual (sync.AdapterName 0L) (sync.AdapterName 1L) "a new name per version"
                Expect.isFalse (calls |> List.exists (fun (p, _) -> p.Contains "reset_prefix_cache" || p.Contains "collective_rpc" || p.Contains "update_weights")) "no full-weight reload and no cache reset"
                // every sampling request names the adapter loaded last before it
                let mutable current = null
                for p, b in calls do
                    if p = load then current <- b.["lora_name"].GetValue<string>()
                    elif p <> unload then Expect.equal (b.[field].GetValue<string>()) current (sprintf "%A: %s names the adapter in '%s'" server p field)
                Expect.equal c.Adapter (sync.AdapterName 1L) "the client selects the last adapter"
                Expect.isTrue (IO.File.Exists(IO.Path.Combine(folder 1, PeftAdapter.Weights)) && IO.File.Exists(IO.Path.Combine(folder 1, PeftAdapter.Config))) "the synced folder is a PEFT adapter"
                Expect.isFalse (IO.File.Exists(IO.Path.Combine(folder 1, HfFolder.Weights))) "and holds no full weights"
                // negative control: a server that loads the adapter but samples without it fails the probe
                use c2 = client server (fake server false)
                let blind = RolloutWeightSync(c2, out + "-blind", (fun dir -> PeftAdapter.Save(model, dir, "tiny")), policy, probe, 1e-4, NullLogger.Instance, SyncPayload.Adapter)
                Expect.throwsT<StaleWeightsException> (fun () -> blind.Sync 0L |> ignore) (sprintf "%A: the probe runs on the adapter" server)
            // SGLang refusing an adapter (e.g. a rank above --max-lora-rank) is an error naming the route and the reason
            let refuse = new Fake(fun path _ -> if path = "/load_lora_adapter" then 400, """{"success": false, "error_message": "rank 64 exceeds max_lora_rank 16", "loaded_adapters": {}}""" else 404, "{}")
            use c3 = client RolloutServer.Sglang refuse
            let e = Expect.throwsC (fun () -> c3.LoadAdapter("x", root) |> ignore) id
            Expect.stringContains e.Message "/load_lora_adapter" "names the route"
            Expect.stringContains e.Message "max_lora_rank" "says why"

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
