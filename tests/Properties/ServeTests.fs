/// `simko serve` and its continuous-batching engine: the official OpenAI .NET client against the server,
/// echo log-probs equal `simko score`, every bad request gets its status and message while the server
/// keeps serving, seeded sequences ignore their batch mates, finished rows free their slots, sequences
/// that join a running batch decode exactly like a plain full-forward loop, and weight swaps.
module SimKO.Tests.ServeTests

#nowarn "3570"

open System
open System.IO
open System.ClientModel
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open OpenAI
open OpenAI.Chat
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Serving
open SimKO.Host.Commands
open SimKO.Host.Checkpoints
open SimKO.Tests.ServeFixture

let private settings maxNew = SamplingSettings(1.0, 1.0, 0, maxNew)
let private greedy maxNew = SamplingSettings(0.0, 1.0, 0, maxNew)

/// Greedy decoding by full forward passes (no cache, batch of one): the reference.
let private referenceGreedy (m: CausalLM) (prompt: int[]) (n: int) =
    use _ = torch.no_grad()
    let mutable seq = Array.copy prompt
    [| for _ in 1 .. n do
         use scope = torch.NewDisposeScope()
         let ids = torch.tensor(seq |> Array.map int64).reshape(1L, int64 seq.Length)
         let mask = torch.ones_like ids
         let next = int (m.Forward(ids, mask, CausalLM.PositionsFromMask mask).select(1L, -1L).argmax(-1L).item<int64>())
         seq <- Array.append seq [| next |]
         yield next |]

let private openAi (server: SimkoServer) key =
    OpenAIClient(ApiKeyCredential(key), OpenAIClientOptions(Endpoint = Uri(server.Url + "/v1")))

let tests =
    testSequenced <| testList "serve" [
        testCase "the OpenAI .NET client: model list, chat through the template, completions with n, seed and logprobs" <| fun () ->
            withServer (ServeOptions(Host = "127.0.0.1", Port = 0, ApiKey = "sk-test")) <| fun server _ ->
                let client = openAi server "sk-test"
                let models = client.GetOpenAIModelClient().GetModels().Value
                Expect.equal [ for m in models -> m.Id ] [ "tiny" ] "one model, named"
                let chat = client.GetChatClient("tiny")
                let options = ChatCompletionOptions(MaxOutputTokenCount = Nullable 6, IncludeLogProbabilities = Nullable true)
                let answer = chat.CompleteChat([| UserChatMessage("Hi!") :> ChatMessage |], options).Value
                let lps = answer.ContentTokenLogProbabilities
                Expect.isTrue (lps.Count >= 1 && lps.Count <= 6) (sprintf "1..6 tokens with log-probs, got %d" lps.Count)
                Expect.all lps (fun t -> t.LogProbability <= 0.0f) "log-probs are ≤ 0"
                Expect.isTrue (answer.FinishReason = ChatFinishReason.Stop || answer.FinishReason = ChatFinishReason.Length) "finish reason"
                // the legacy completions client is internal in 2.15: send through the client's own pipeline (its auth, retries)
                let complete (body: string) : JsonNode =
                    let msg = client.Pipeline.CreateMessage()
                    msg.Request.Method <- "POST"
                    msg.Request.Uri <- Uri(server.Url + "/v1/completions")
                    msg.Request.Headers.Set("Content-Type", "application/json")
                    msg.Request.Content <- BinaryContent.Create(BinaryData.FromString body)
                    client.Pipeline.Send msg
                    Expect.equal msg.Response.Status 200 (msg.Response.Content.ToString())
                    JsonNode.Parse(msg.Response.Content.ToString())
                let body = json [ "model", jv "tiny"; "prompt", jv "12+3="; "n", jv 3; "max_tokens", jv 5; "seed", jv 7; "logprobs", jv 1; "return_tokens_as_token_ids", jv true ]
                let a, b = complete body, complete body
                let choices (x: JsonNode) = [ for c in x.["choices"].AsArray() -> c.["logprobs"].["tokens"].ToJsonString(), c.["logprobs"].["token_logprobs"].AsArray().Count ]
                Expect.equal (choices a) (choices b) "the same seed gives the same tokens"
                Expect.equal (a.["choices"].AsArray().Count) 3 "n = 3 choices"
                Expect.isGreaterThan (choices a |> List.map fst |> List.distinct |> List.length) 1 "the n samples differ from each other"
                for c in a.["choices"].AsArray() do
                    Expect.stringStarts (c.["logprobs"].["tokens"].[0].GetValue<string>()) "token_id:" "tokens as ids"

        testCase "echo with logprobs gives the prompt's log-probs (first null), equal to simko score" <| fun () ->
            withServer options <| fun server model ->
                let ids = [| 72; 101; 108; 108; 111; 44; 32; 119; 111; 114; 108; 100 |]
                let status, body, _ = post (server.Url + "/v1/completions") (json [ "prompt", ints ids; "max_tokens", jv 0; "echo", jv true; "logprobs", jv 0 ]) None
                Expect.equal status 200 (string body)
                let lps = body.["choices"].[0].["logprobs"].["token_logprobs"].AsArray()
                Expect.equal lps.Count ids.Length "one per prompt token"
                Expect.isNull lps.[0] "the first is null"
                use input = new StringReader(json [ "ids", ints ids ])
                use output = new StringWriter()
                ScoreCommand.Score(ModelPolicy(model), HfFolder.LoadTokenizer(tinyModel.Force()), input, output, "test") |> ignore
                let scored = JsonNode.Parse(output.ToString()).["logprobs"].AsArray()
                for t in 1 .. ids.Length - 1 do
                    Expect.floatClose Accuracy.high (lps.[t].GetValue<float>()) (scored.[t - 1].GetValue<float>()) (sprintf "token %d" t)

        testCase "bad requests get their status and a message naming the field, and the server keeps serving" <| fun () ->
            withServer (ServeOptions(Host = "127.0.0.1", Port = 0, ApiKey = "k", MaxQueue = 1, MaxRequestBytes = 65536L)) <| fun server _ ->
                let url = server.Url + "/v1/completions"
                let expectError (status, (body: JsonNode), _) want (text: string) =
                    Expect.equal status want (string body)
                    Expect.stringContains (body.["error"].["message"].GetValue<string>()) text "message"
                expectError (post url "{\"prompt\": " (Some "k")) 400 "not valid JSON"
                expectError (post url "[1, 2]" (Some "k")) 400 "JSON object"
                expectError (post url (json [ "prompt", jv "ab"; "n", jv "two" ]) (Some "k")) 400 "'n'"
                expectError (post url (json [ "prompt", jv "ab"; "temperature", jv -1.0 ]) (Some "k")) 400 "'temperature'"
                expectError (post url (json [ "prompt", jv "ab"; "max_tokens", jv 100000 ]) (Some "k")) 400 "'max_tokens'"
                expectError (post url (json [ "prompt", ints (Array.create 200 65) ]) (Some "k")) 400 "at most 128 prompt tokens"
                expectError (post url (json [ "prompt", ints [ 1; 99999 ] ]) (Some "k")) 400 "outside the vocabulary"
                expectError (post url (json [ "prompt", jv 5 ]) (Some "k")) 400 "'prompt'"
                expectError (post url (json [ "prompt", jv "ab"; "stream", jv true ]) (Some "k")) 400 "'stream'"
                expectError (post url (json [ "prompt", jv (String('a', 70000)) ]) (Some "k")) 413 "larger than"
                expectError (post url (json [ "prompt", jv "ab" ]) None) 401 "API key"
                expectError (post url (json [ "prompt", jv "ab" ]) (Some "wrong")) 401 "API key"
                // more sequences than the queue holds can never be queued: 400, not 429 (issue 24 §3)
                let status, body, retry = post url (json [ "prompt", jv "ab"; "n", jv 2 ]) (Some "k")
                expectError (status, body, retry) 400 "queue holds at most 1"
                Expect.isNull retry "no Retry-After"
                expectError (post (server.Url + "/update_weights_from_disk") (json [ "model_path", jv "/nonexistent/folder" ]) (Some "k")) 400 "/nonexistent/folder"
                let status, body, _ = post url (json [ "prompt", jv "ab"; "max_tokens", jv 3 ]) (Some "k")
                Expect.equal status 200 (string body)
                Expect.equal (body.["usage"].["prompt_tokens"].GetValue<int>()) 2 "still serving"

        testCase "a seeded sequence samples the same tokens whatever else is in the batch" <| fun () ->
            use model = loadModel (tinyModel.Force())
            use engine = new ContinuousBatcher(model, 256, maxRows = 8)
            let job = SequenceJob([| 40; 41; 42 |], settings 12, 1234L)
            let alone = engine.Submit(job).Result
            let others = [ for i in 0 .. 6 -> SequenceJob(Array.init (3 + 5 * i) (fun k -> 50 + k), settings (2 + 3 * i), int64 (99 + i)) ]
            let crowd = engine.SubmitAll(others @ [ job ] @ others)
            Expect.equal crowd.[7].Result.Tokens alone.Tokens "same tokens in a crowd"
            for a, b in Seq.zip crowd.[7].Result.LogProbs alone.LogProbs do
                Expect.isLessThan (abs (a - b)) 1e-4f "same log-probs (up to the batch's float rounding)"
            let other = engine.Submit(SequenceJob(job.Prompt, settings 12, 1235L)).Result
            Expect.notEqual other.Tokens alone.Tokens "another seed gives other tokens (negative control)"

        testCase "finished rows free their slots at once; joining sequences decode like a plain greedy loop" <| fun () ->
            use model = loadModel (tinyModel.Force())
            use engine = new ContinuousBatcher(model, 256, maxRows = 4)
            // one long sequence and many short ones of several prompt lengths: the short ones come and go
            let jobs = [ SequenceJob(Array.init 5 (fun k -> 60 + k), greedy 40, 1L) ]
                       @ [ for i in 0 .. 9 -> SequenceJob(Array.init (1 + (i * 7) % 11) (fun k -> 70 + i + k), greedy (2 + i % 4), int64 i) ]
            let order = System.Collections.Concurrent.ConcurrentQueue<int>()
            let tasks = engine.SubmitAll(jobs) |> Seq.mapi (fun i t -> t.ContinueWith(fun (t: Threading.Tasks.Task<SequenceResult>) -> order.Enqueue i; t.Result)) |> Array.ofSeq
            let results = tasks |> Array.map (fun t -> t.Result)
            let stats = engine.Stats
            Expect.isLessThanOrEqual stats.MaxActiveRows 4 "never more rows than slots"
            Expect.isGreaterThanOrEqual stats.SlotReuses 7L "short sequences reuse freed slots while the long one runs"
            Expect.equal (Seq.last order) 0 "the long one finishes last"
            for job, r in Seq.zip jobs results do
                Expect.equal r.Tokens (referenceGreedy model job.Prompt job.Sampling.MaxNewTokens) (sprintf "prompt of %d tokens" job.Prompt.Length)

        testCase "rows added to a running batch, compaction and dropping the cache's front keep greedy decoding exact" <| fun () ->
            use model = loadModel (tinyModel.Force())
            use engine = new ContinuousBatcher(model, 256, maxRows = 16)
            let long = SequenceJob([| 60; 61; 62 |], greedy 60, 1L)
            let first = engine.Submit long
            // wait (bounded) until the long row has decoded 35 tokens, then add rows the cache has no slot for
            let clock = Diagnostics.Stopwatch.StartNew()
            while engine.Stats.DecodeSteps < 35L && clock.Elapsed.TotalSeconds < 60.0 do Threading.Thread.Sleep 1
            let later = [ for i in 0 .. 3 -> SequenceJob(Array.init (2 + i) (fun k -> 80 + k + i), greedy 40, int64 i) ]
                        @ [ for i in 0 .. 7 -> SequenceJob(Array.init (1 + i) (fun k -> 90 + k), greedy 5, int64 (10 + i)) ]
            let results = engine.SubmitAll(later) |> Seq.map (fun t -> t.Result) |> List.ofSeq
            Expect.equal first.Result.Tokens (referenceGreedy model long.Prompt 60) "the long row"
            for job, r in List.zip later results do
                Expect.equal r.Tokens (referenceGreedy model job.Prompt job.Sampling.MaxNewTokens) (sprintf "a row that joined late (prompt %d tokens)" job.Prompt.Length)
            Expect.isGreaterThanOrEqual engine.Stats.Compactions 1L "the cache was compacted when most rows had finished"
            Expect.isGreaterThanOrEqual engine.Stats.FrontDrops 1L "the cache dropped the columns no row needs any more"

        testCase "update_weights_from_disk swaps the weights between batches and returns the new version" <| fun () ->
            let other = writeModel "tiny-b" 12L
            withServer options <| fun server _ ->
                let status, body, _ = post (server.Url + "/update_weights_from_disk") (json [ "model_path", jv other ]) None
                Expect.equal status 200 (string body)
                Expect.isTrue (body.["success"].GetValue<bool>()) "success"
                Expect.equal (body.["weights_version"].GetValue<int64>()) 1L "version 1"
                let _, health, _ = post (server.Url + "/v1/completions") (json [ "prompt", ints [ 72; 105 ]; "max_tokens", jv 0; "echo", jv true; "logprobs", jv 0 ]) None
                Expect.equal (health.["weights_version"].GetValue<int64>()) 1L "answers come from version 1"
                use b = loadModel other
                let expected = SequenceScores.LogProbs(ModelPolicy(b), [| 72; 105 |])
                Expect.floatClose Accuracy.high (health.["choices"].[0].["logprobs"].["token_logprobs"].[1].GetValue<float>()) (float expected.[0]) "the new weights serve"
    ]
