/// Issue 24: `simko serve` and the trainer's inputs under hostile and careless input. Each bad input
/// gets a 4xx (or a clear error) naming the field, file or tensor, the server keeps serving with its
/// weights unchanged, and an internal error is logged with its exception.
module SimKO.Tests.HostileTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Microsoft.Extensions.Logging
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Serving
open SimKO.Host.Checkpoints
open SimKO.Tests.ServeFixture

/// A logger that keeps (level, message, exception) of everything it is given.
type ListLogger() =
    let entries = Collections.Concurrent.ConcurrentQueue<LogLevel * string * exn>()
    member _.Entries = List.ofSeq entries
    interface ILogger with
        member _.BeginScope _ = null
        member _.IsEnabled _ = true
        member _.Log(level, _, state, ex, formatter) = entries.Enqueue((level, formatter.Invoke(state, ex), ex))

/// Run <f> against the tiny model's server with <log>.
let private withLoggedServer (options: ServeOptions) (log: ILogger) f =
    let dir = tinyModel.Force()
    let tok = HfFolder.LoadTokenizer dir
    use model = loadModel dir
    let server = SimkoServer.StartAsync(model, tok, ChatMarkup.FromFolder(dir, tok), "tiny", options, log).GetAwaiter().GetResult()
    try f server model
    finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()

/// POST with a chosen Content-Type and extra headers; (status, body text).
let private send (url: string) (body: string) (contentType: string) (headers: (string * string) list) =
    use http = new HttpClient(Timeout = TimeSpan.FromSeconds 60.0)
    use req = new HttpRequestMessage(HttpMethod.Post, url, Content = new StringContent(body, Encoding.UTF8))
    req.Content.Headers.ContentType <- Headers.MediaTypeHeaderValue.Parse contentType
    for k, v in headers do req.Headers.TryAddWithoutValidation(k, v) |> ignore
    use resp = http.Send req
    int resp.StatusCode, resp.Content.ReadAsStringAsync().GetAwaiter().GetResult()

let private expectError (status, (body: JsonNode), _) want (text: string) =
    Expect.equal status want (string body)
    Expect.stringContains (body.["error"].["message"].GetValue<string>()) text (sprintf "the message names it: %O" body)

/// A copy of the tiny model folder whose weights file is replaced by <writeWeights dir>.
let private forgedFolder name (writeWeights: string -> unit) =
    let src = tinyModel.Force()
    let dir = Path.Combine(root, name)
    if Directory.Exists dir then Directory.Delete(dir, true)
    Directory.CreateDirectory dir |> ignore
    for f in Directory.GetFiles src do File.Copy(f, Path.Combine(dir, Path.GetFileName f))
    File.Delete(Path.Combine(dir, HfFolder.Weights))
    writeWeights dir
    dir

/// A safetensors file with a hand-written header and <dataBytes> zero bytes of data.
let private rawSafetensors (path: string) (header: string) (dataBytes: int) =
    let h = Encoding.UTF8.GetBytes header
    use f = File.Create path
    f.Write(BitConverter.GetBytes(int64 h.Length), 0, 8)
    f.Write(h, 0, h.Length)
    f.Write(Array.zeroCreate dataBytes, 0, dataBytes)

let private version (server: SimkoServer) = server.Engine.WeightsVersion

let tests =
    testSequenced <| testList "hostile input" [
        // ---------------------------------------------------------------- item 5
        testCase "duplicate keys, a content part of type 5 and a lone surrogate are 400s naming the field" <| fun () ->
            withServer options <| fun server _ ->
                let url = server.Url + "/v1/completions"
                expectError (post url """{"prompt": "ab", "max_tokens": 2, "prompt": "cd"}""" None) 400 "duplicate key 'prompt'"
                expectError (post (server.Url + "/v1/chat/completions") """{"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]}""" None) 400 "messages[0].content[0]"
                expectError (post url """{"prompt": "a\ud800b", "max_tokens": 2}""" None) 400 "'prompt'"
                expectError (post (server.Url + "/v1/chat/completions") """{"messages": [{"role": "user", "content": "hi \udc00"}]}""" None) 400 "messages[0].content"
                let status, body, _ = post url (json [ "prompt", jv "ab"; "max_tokens", jv 2 ]) None
                Expect.equal status 200 (string body)

        testCase "a temperature of 1e-40 with logprobs samples greedily: the tokens of temperature 0, never the pad id" <| fun () ->
            withServer options <| fun server _ ->
                let url = server.Url + "/v1/completions"
                let ask (t: float) =
                    let status, body, _ = post url (json [ "prompt", ints [ 72; 105 ]; "max_tokens", jv 12; "temperature", jv t; "logprobs", jv 1; "return_tokens_as_token_ids", jv true; "ignore_eos", jv true; "seed", jv 3 ]) None
                    Expect.equal status 200 (string body)
                    [ for x in body.["choices"].[0].["logprobs"].["tokens"].AsArray() -> x.GetValue<string>() ], body
                let tiny, body = ask 1e-40
                let greedy, _ = ask 0.0
                Expect.equal tiny greedy "1e-40 decodes like temperature 0"
                Expect.equal tiny.Length 12 "12 tokens (ignore_eos): no row ended early on a NaN distribution"
                for lp in body.["choices"].[0].["logprobs"].["token_logprobs"].AsArray() do
                    Expect.isTrue (Double.IsFinite(lp.GetValue<float>())) "finite log-probs"

        testCase "forged safetensors shapes and offsets are 400s naming the file and tensor; the weights stay" <| fun () ->
            let huge = forgedFolder "forged-shape" (fun d ->
                rawSafetensors (Path.Combine(d, HfFolder.Weights)) """{"model.embed_tokens.weight": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 16]}}""" 16)
            let nulls = forgedFolder "forged-offsets" (fun d ->
                rawSafetensors (Path.Combine(d, HfFolder.Weights)) """{"model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [null, 10]}}""" 16)
            let log = ListLogger()
            withLoggedServer options log <| fun server _ ->
                let reload dir = post (server.Url + "/update_weights_from_disk") (json [ "model_path", jv dir ]) None
                expectError (reload huge) 400 "tensor 'model.embed_tokens.weight'"
                expectError (reload huge) 400 (Path.Combine(huge, HfFolder.Weights))
                expectError (reload nulls) 400 "tensor 'model.norm.weight': data_offsets must be two integers"
                Expect.equal (version server) 0L "the old weights are kept"
                let status, body, _ = post (server.Url + "/v1/completions") (json [ "prompt", jv "ab"; "max_tokens", jv 2 ]) None
                Expect.equal status 200 (string body)

        testCase "rope_scaling llama3 without a factor names the field" <| fun () ->
            let dir = Path.Combine(root, "rope-config")
            Directory.CreateDirectory dir |> ignore
            let cfg = JsonNode.Parse(ModelConfig.Tiny(64).ToJson()).AsObject()
            cfg["rope_scaling"] <- JsonNode.Parse """{"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 128}"""
            let path = Path.Combine(dir, "config.json")
            File.WriteAllText(path, cfg.ToJsonString())
            Expect.throwsC (fun () -> ModelConfig.Load path |> ignore) (fun e ->
                Expect.isTrue (e :? InvalidDataException) (sprintf "an InvalidDataException, got %s" (e.GetType().Name))
                Expect.stringContains e.Message "rope_scaling.factor" "names the field"
                Expect.stringContains e.Message path "names the file")

        testCase "an internal error is a 500 with a message, and it is logged with its exception" <| fun () ->
            let log = ListLogger()
            withLoggedServer options log <| fun server _ ->
                server.Engine.Dispose()                     // the engine is gone: submitting throws ObjectDisposedException
                let status, body, _ = post (server.Url + "/v1/completions") (json [ "prompt", jv "ab"; "max_tokens", jv 2 ]) None
                Expect.equal status 500 (string body)
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) "ObjectDisposedException" "the body says what failed"
                Expect.exists log.Entries (fun (l, _, e) -> l = LogLevel.Error && e :? ObjectDisposedException) "logged with its exception"

        // ---------------------------------------------------------------- item 6
        testCase "a Parquet footer length of 0x7fffffff is an error naming the file, not a 2 GiB allocation" <| fun () ->
            let path = Path.Combine(root, "forged.parquet")
            Directory.CreateDirectory root |> ignore
            let bytes = Array.concat [ "PAR1"B; Array.zeroCreate 32; BitConverter.GetBytes 0x7fffffff; "PAR1"B ]
            File.WriteAllBytes(path, bytes)
            let fields = SimKO.Data.Math.FieldOptions([| "question" |], "answer")
            Expect.throwsC (fun () -> SimKO.Data.Math.Datasets.LoadFile(path, fields) |> ignore) (fun e ->
                Expect.isTrue (e :? SimKO.Data.Math.DatasetException) (sprintf "a DatasetException, got %s: %s" (e.GetType().Name) e.Message)
                Expect.stringContains e.Message path "names the file"
                Expect.stringContains e.Message "footer length is 2147483647" "says what is wrong")

        testCase "max_new_tokens beyond the model's context is an error naming it, before any allocation" <| fun () ->
            use model = loadModel (tinyModel.Force())
            let sampler = KvCacheSampler(model, 256)
            Expect.throwsC (fun () -> sampler.Generate(GenerateRequest([| [| 65; 66 |] |], 1, 1.0, 1.0, 0, 1000000000, 1L)) |> ignore) (fun e ->
                Expect.stringContains e.Message "max_new_tokens" "names the setting"
                Expect.stringContains e.Message "128" "and the context")

        // ---------------------------------------------------------------- item 7
        testCase "mutating routes need application/json and refuse other origins; the weights stay" <| fun () ->
            let other = writeModel "tiny-csrf" 12L
            withServer options <| fun server _ ->
                let url = server.Url + "/update_weights_from_disk"
                let body = json [ "model_path", jv other ]
                let status, text = send url body "text/plain" []
                Expect.equal status 415 text
                Expect.stringContains text "application/json" "says what to send"
                let status, text = send url body "application/json" [ "Origin", "http://evil.example" ]
                Expect.equal status 403 text
                Expect.stringContains text "Origin" "names the header"
                let status, text = send (server.Url + "/v1/completions") (json [ "prompt", jv "ab" ]) "application/x-www-form-urlencoded" []
                Expect.equal status 415 text
                Expect.equal (version server) 0L "nothing was swapped"
                let status, text = send url body "application/json" [ "Origin", server.Url ]
                Expect.equal status 200 text

        testCase "an index whose weight_map names a file outside the model folder is refused" <| fun () ->
            let outside = writeModel "tiny-outside" 13L
            let dir = forgedFolder "escape" (fun d ->
                let map = JsonObject()
                use m = loadModel outside
                for struct (name, _) in m.NamedParameters() do map[name] <- jv (Path.Combine("..", "tiny-outside", HfFolder.Weights))
                let index = JsonObject(dict [ "metadata", JsonObject(dict [ "total_size", jv 0 ]) :> JsonNode; "weight_map", map ])
                File.WriteAllText(Path.Combine(d, HfFolder.Index), index.ToJsonString()))
            Expect.throwsC (fun () -> HfFolder.ReadWeights dir |> ignore) (fun e -> Expect.stringContains e.Message "outside the model folder" "read for a reload")
            Expect.throwsC (fun () -> HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32) |> ignore) (fun e -> Expect.stringContains e.Message "outside the model folder" "loaded at startup")

        // ---------------------------------------------------------------- item 4
        testCase "non-finite weights are refused on reload (400 naming the tensor, old weights kept) and at startup" <| fun () ->
            let dir = writeModel "tiny-nan" 14L
            let tensors = HfFolder.ReadWeights dir
            tensors["model.layers.1.mlp.up_proj.weight"].index_put_(torch.tensor(Single.NaN), [| torch.TensorIndex.Single 0L; torch.TensorIndex.Single 1L |]) |> ignore
            tensors["model.norm.weight"].index_put_(torch.tensor(Single.PositiveInfinity), [| torch.TensorIndex.Single 2L |]) |> ignore
            SafeTensors.Save(Path.Combine(dir, HfFolder.Weights), tensors)
            withServer options <| fun server _ ->
                let before = post (server.Url + "/v1/completions") (json [ "prompt", ints [ 72; 105 ]; "max_tokens", jv 4; "temperature", jv 0.0; "return_tokens_as_token_ids", jv true; "logprobs", jv 0 ]) None
                expectError (post (server.Url + "/update_weights_from_disk") (json [ "model_path", jv dir ]) None) 400 "non-finite"
                let _, body, _ = post (server.Url + "/update_weights_from_disk") (json [ "model_path", jv dir ]) None
                let msg = body.["error"].["message"].GetValue<string>()
                Expect.isTrue (msg.Contains "model.layers.1.mlp.up_proj.weight" || msg.Contains "model.norm.weight") msg
                Expect.equal (version server) 0L "old weights kept"
                let after = post (server.Url + "/v1/completions") (json [ "prompt", ints [ 72; 105 ]; "max_tokens", jv 4; "temperature", jv 0.0; "return_tokens_as_token_ids", jv true; "logprobs", jv 0 ]) None
                let (_, b1, _), (s2, b2, _) = before, after
                Expect.equal s2 200 (string b2)
                Expect.equal (b2.["choices"].[0].["logprobs"].ToJsonString()) (b1.["choices"].[0].["logprobs"].ToJsonString()) "the same answers as before"
            Expect.throwsC (fun () -> HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32) |> ignore) (fun e ->
                Expect.stringContains e.Message "non-finite" "startup refuses them too"
                Expect.isTrue (e.Message.Contains "model.layers.1.mlp.up_proj.weight" || e.Message.Contains "model.norm.weight") e.Message)

        // ---------------------------------------------------------------- item 3
        testCase "n larger than the queue is a 400 naming n and the limit, without Retry-After; the rollout client gives up at once" <| fun () ->
            withServer (ServeOptions(Host = "127.0.0.1", Port = 0, MaxQueue = 4)) <| fun server _ ->
                let status, body, retry = post (server.Url + "/v1/completions") (json [ "prompt", jv "ab"; "n", jv 5; "max_tokens", jv 2 ]) None
                expectError (status, body, retry) 400 "'n'"
                Expect.stringContains (body.["error"].["message"].GetValue<string>()) "at most 4" "names the limit"
                Expect.isNull retry "no Retry-After: it can never succeed"
                use c = new ServerRolloutClient(RolloutClientOptions(server.Url, RolloutServer.Simko, Retries = 3, BackoffSeconds = 5.0))
                let clock = Diagnostics.Stopwatch.StartNew()
                Expect.throwsC (fun () -> c.Generate(GenerateRequest([| [| 65; 66 |] |], 5, 1.0, 1.0, 0, 2, 1L)) |> ignore) (fun e ->
                    Expect.stringContains e.Message "400" "the client reports the 400")
                Expect.isLessThan clock.Elapsed.TotalSeconds 5.0 "no backoff: a 400 is not retried"
                let status, body, _ = post (server.Url + "/v1/completions") (json [ "prompt", jv "ab"; "n", jv 4; "max_tokens", jv 2 ]) None
                Expect.equal status 200 (string body)

        // ---------------------------------------------------------------- item 1
        testCase "one sequence whose text cannot be decoded fails alone; the batch goes on" <| fun () ->
            use model = loadModel (tinyModel.Force())
            // decoding fails once a sequence holds 3 tokens; only the job with a stop string decodes
            let decode = Func<Collections.Generic.IReadOnlyList<int>, string>(fun ids -> if ids.Count >= 3 then failwith "id 151700 is not in the tokenizer" else "x")
            use engine = new ContinuousBatcher(model, 256, maxRows = 4, decode = decode)
            let plain = SamplingSettings(1.0, 1.0, 0, 8)
            let stopping = SamplingSettings(1.0, 1.0, 0, 8, StopStrings = [| "never" |])
            let tasks = engine.SubmitAll([| SequenceJob([| 65; 66 |], plain, 1L); SequenceJob([| 67 |], stopping, 2L); SequenceJob([| 68; 69; 70 |], plain, 3L) |])
            try Threading.Tasks.Task.WaitAll([| for t in tasks -> t :> Threading.Tasks.Task |]) with _ -> ()
            Expect.isTrue tasks.[1].IsFaulted "the faulty sequence fails"
            Expect.isTrue (tasks.[1].Exception.InnerException :? SequenceFaultException) (string tasks.[1].Exception)
            Expect.stringContains tasks.[1].Exception.InnerException.Message "151700" "with its own error"
            for k in [ 0; 2 ] do
                Expect.isTrue (tasks.[k].Status = Threading.Tasks.TaskStatus.RanToCompletion) (sprintf "sequence %d completes: %O" k tasks.[k].Exception)
                Expect.equal tasks.[k].Result.Tokens.Length 8 "all its tokens"

        testCase "ids past the tokenizer's vocabulary decode to nothing and are never sampled: stop strings on a padded vocabulary work" <| fun () ->
            let dir = tinyModel.Force()
            let tok = HfFolder.LoadTokenizer dir
            // a model with 40 more rows than the tokenizer has tokens (as every Qwen checkpoint)
            use model = new CausalLM(ModelConfig.Tiny(tok.VocabSize + 40, dModel = 32, layers = 2, heads = 4, kvHeads = 2, maxPositions = 128))
            model.InitWeights 5L
            model.eval() |> ignore
            let server = SimkoServer.StartAsync(model, tok, ChatMarkup.FromFolder(dir, tok), "padded", options, ListLogger()).GetAwaiter().GetResult()
            try
                let url = server.Url + "/v1/completions"
                // the prompt itself holds two ids the tokenizer lacks (the model's vocabulary has them)
                let prompt = [ 65; 66; tok.VocabSize + 5; tok.VocabSize + 39 ]
                let request asIds =
                    json [ "prompt", JsonArray([| for i in prompt -> JsonValue.Create i :> JsonNode |]) :> JsonNode; "max_tokens", jv 40; "temperature", jv 5.0; "n", jv 4
                           "stop", jv "zq"; "ignore_eos", jv true; "seed", jv 1; "logprobs", jv 0; "echo", jv true; "return_tokens_as_token_ids", jv asIds ]
                let status, body, _ = post url (request true) None
                Expect.equal status 200 (string body)
                for c in body.["choices"].AsArray() do
                    let ids = [ for t in c.["logprobs"].["tokens"].AsArray() -> int (t.GetValue<string>().Substring 9) ]
                    Expect.equal (List.truncate 4 ids) prompt "the echoed prompt keeps its ids"
                    let sampled = List.skip 4 ids
                    Expect.isNonEmpty sampled "tokens were sampled"
                    Expect.all sampled (fun i -> i < tok.VocabSize) (sprintf "no sampled id lies past the tokenizer's %d: %A" tok.VocabSize sampled)
                let status, body, _ = post url (request false) None
                Expect.equal status 200 (string body)
                let head = tok.Decode [| 65; 66 |]
                for c in body.["choices"].AsArray() do
                    let texts = [ for t in c.["logprobs"].["tokens"].AsArray() -> t.GetValue<string>() ]
                    Expect.equal (texts.[2], texts.[3]) ("", "") "ids the tokenizer lacks decode to nothing"
                    Expect.stringStarts (c.["text"].GetValue<string>()) head "the echoed text is the decodable part of the prompt"
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()

        // ---------------------------------------------------------------- item 2
        testCase "disconnected clients free their queue places and slots: the next request is served, not 429" <| fun () ->
            withServer (ServeOptions(Host = "127.0.0.1", Port = 0, MaxBatch = 2, MaxQueue = 4)) <| fun server _ ->
                let url = server.Url + "/v1/completions"
                let long = json [ "prompt", jv "ab"; "max_tokens", jv 120; "ignore_eos", jv true ]
                use http = new HttpClient()
                use cts = new Threading.CancellationTokenSource()
                let abandoned = [ for _ in 1 .. 6 -> http.PostAsync(url, new StringContent(long, Encoding.UTF8, "application/json"), cts.Token) ]
                let clock = Diagnostics.Stopwatch.StartNew()
                // on a loaded machine the six arrive one by one: cancel once some wait behind the two running
                while server.Engine.Queued < 1 && clock.Elapsed.TotalSeconds < 60.0 do Threading.Thread.Sleep 10
                Expect.isGreaterThanOrEqual server.Engine.Queued 1 "sequences wait behind the two running"
                cts.Cancel()                                    // the six clients go away
                for t in abandoned do (try t.Wait() with _ -> ())
                let clock = Diagnostics.Stopwatch.StartNew()
                while server.Engine.Queued > 0 && clock.Elapsed.TotalSeconds < 10.0 do Threading.Thread.Sleep 10
                Expect.equal server.Engine.Queued 0 "their queue places are freed"
                let status, body, _ = post url (json [ "prompt", jv "ab"; "max_tokens", jv 2 ]) None
                Expect.equal status 200 (string body)
                // wait until the engine is idle: the old engine ran all six to their 120 tokens
                let mutable last = -1L
                while last <> server.Engine.Stats.GeneratedTokens do
                    last <- server.Engine.Stats.GeneratedTokens
                    Threading.Thread.Sleep 1000
                Expect.isLessThan server.Engine.Stats.GeneratedTokens (6L * 120L) "the abandoned sequences did not run to the end"
    ]
