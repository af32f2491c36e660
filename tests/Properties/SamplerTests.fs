/// The one token sampler (src/SimKO.Host/Rollout/TokenSampler.cs) of every engine: the sampled
/// distribution is the softmax of logits/temperature restricted to the top-k (ties with the k-th
/// value kept), then to the top-p nucleus (the token that crosses p kept, ties cut in token-id
/// order), renormalised — checked against a float64 computation over many per-sequence seeds; and
/// the consequences of one sampler with per-sequence streams: a sample's tokens do not depend on the
/// batch it is in (static and continuous batching), and one seed gives the same tokens in process
/// (both batching modes), through `simko serve` and through the server rollout client.
module SimKO.Tests.SamplerTests

open System.Text.Json.Nodes
open Expecto
open TorchSharp
open SimKO.Host.Rollout
open SimKO.Tests.Checks
open SimKO.Tests.ServeFixture

/// The filtered, renormalised distribution in float64: temperature, then top-k (ties with the
/// k-th value kept), then top-p (in descending order, ties by token id, a token stays while the
/// mass before it is below p). Returns log-probs, −∞ outside the support.
let reference (logits: float[]) (temperature: float) (topK: int) (topP: float) =
    let z = logits |> Array.map (fun x -> x / temperature)
    let v = z.Length
    let kept =
        if topK > 0 && topK < v then
            let kth = (Array.sortDescending z).[topK - 1]
            z |> Array.map (fun x -> x >= kth)
        else Array.create v true
    let renormalise (keep: bool[]) =
        let m = Array.max [| for i in 0 .. v - 1 do if keep.[i] then yield z.[i] |]
        let total = Seq.sum [ for i in 0 .. v - 1 do if keep.[i] then yield exp (z.[i] - m) ]
        Array.init v (fun i -> if keep.[i] then z.[i] - m - log total else -infinity)
    let afterK = renormalise kept
    if topP < 1.0 then
        let order = Array.init v id |> Array.sortWith (fun i j -> if z.[i] <> z.[j] then compare z.[j] z.[i] else compare i j)
        let nucleus = Array.create v false
        let mutable before = 0.0
        for i in order do
            if kept.[i] && before < topP then nucleus.[i] <- true
            before <- before + (if kept.[i] then exp afterK.[i] else 0.0)
        renormalise nucleus
    else afterK

/// Sample n rows of one logits row [V] (float32), row k with its own generator seeded k (one draw each).
let private sampleMany (row: float32[]) (temperature: float) (topK: int) (topP: float) (n: int) =
    use _ = torch.NewDisposeScope()
    let logits = torch.tensor(row).reshape(1L, int64 row.Length).expand(int64 n, int64 row.Length).contiguous()
    let filters = Array.create n (TokenFilter(temperature, topK, topP))
    let rngs = Array.init n (fun k -> SequenceRng(int64 k))
    let struct (tokens, logps) = TokenSampler.Sample(logits, filters, rngs)
    tokens, logps

/// Frequencies within 5 standard errors (+ 1/n) of the reference probabilities, and no token outside
/// the support: the seeds are fixed, so this is exact, not flaky.
let private expectFrequencies (what: string) (expected: float[]) (tokens: int[]) =
    let n = tokens.Length
    for t in tokens do
        if System.Double.IsNegativeInfinity expected.[t] then failtestf "%s: token %d is outside the support %A" what t expected
    let counts = Array.zeroCreate expected.Length
    for t in tokens do counts.[t] <- counts.[t] + 1
    for v in 0 .. expected.Length - 1 do
        let p = exp expected.[v]
        let f = float counts.[v] / float n
        let bound = 5.0 * sqrt (p * (1.0 - p) / float n) + 1.0 / float n
        if abs (f - p) > bound then failtestf "%s: token %d: frequency %g, probability %g, bound %g" what v f p bound

let private support (lp: float[]) = lp |> Array.map (fun x -> not (System.Double.IsNegativeInfinity x))

/// Settings on a small grid, and a seed for the logits.
type SamplerCase = { V: int; Temperature: float; TopK: int; TopP: float; Seed: int }

let private caseGen =
    FsCheck.FSharp.Gen.map5 (fun v t k p s -> { V = v; Temperature = t; TopK = k % (v + 1); TopP = p; Seed = s })
        (FsCheck.FSharp.Gen.choose (2, 8))
        (FsCheck.FSharp.Gen.elements [ 0.3; 0.6; 1.0; 1.7 ])
        (FsCheck.FSharp.Gen.choose (0, 8))
        (FsCheck.FSharp.Gen.elements [ 1.0; 0.95; 0.8; 0.5; 0.1 ])
        (FsCheck.FSharp.Gen.choose (0, 1_000_000))

let private stops = [| 258 |]
let private tokensOf (gs: seq<Generated>) = [ for g in gs -> g.PromptIndex, List.ofArray g.Tokens ]

let tests =
    testSequenced <| testList "token sampler" [
        testPropertyWithConfig { Generators.config 25 with arbitrary = [] } "over many seeds, sampled tokens and their log-probs follow the filtered, renormalised softmax" <|
            FsCheck.FSharp.Prop.forAll (FsCheck.FSharp.Arb.fromGen caseGen) (fun c ->
                use _ = torch.NewDisposeScope()
                let gen = new torch.Generator(uint64 c.Seed)
                let row = (torch.randn([| int64 c.V |], generator = gen) * 2.0).data<float32>().ToArray()   // float32, as the sampler gets them
                let expected = reference (Array.map float row) c.Temperature c.TopK c.TopP
                let tokens, logp = sampleMany row c.Temperature c.TopK c.TopP 8_000
                expectFrequencies (sprintf "case %A" c) expected tokens
                allClose (sprintf "log-prob of each sampled token (case %A)" c) 2e-5 1e-5 (tokens |> Array.map (fun t -> expected.[t])) (Array.map float logp))

        testCase "top-p keeps the token that crosses p, top-k keeps ties with the k-th value, top-p cuts ties in token-id order" <| fun () ->
            // probabilities 0.5, 0.3, 0.15, 0.05: at p = 0.7 token 1 crosses p (mass before it 0.5, after it 0.8) and stays
            let crossing = [| 0.5; 0.3; 0.15; 0.05 |] |> Array.map (fun p -> float32 (log p))
            Expect.equal (support (reference (Array.map float crossing) 1.0 0 0.7)) [| true; true; false; false |] "reference: the crossing token stays"
            let tokens, _ = sampleMany crossing 1.0 0 0.7 20_000
            expectFrequencies "top-p 0.7" (reference (Array.map float crossing) 1.0 0 0.7) tokens
            Expect.isGreaterThan (tokens |> Array.filter ((=) 1) |> Array.length) 6_000 "the crossing token is sampled (≈ 0.375)"
            // top-k 2 with the 2nd value tied three ways: all four tokens at or above the k-th value stay
            let tied = [| 2.0f; 1.0f; 1.0f; 1.0f; 0.0f |]
            Expect.equal (support (reference (Array.map float tied) 1.0 2 1.0)) [| true; true; true; true; false |] "reference: ties with the k-th value stay"
            let tokens, _ = sampleMany tied 1.0 2 1.0 20_000
            expectFrequencies "top-k 2 with ties" (reference (Array.map float tied) 1.0 2 1.0) tokens
            // four equal tokens (0.25 each, exact in float32), p = 0.5: tokens 0 and 1 hold the mass 0.5; the rest is cut (as HF and vLLM cut)
            let flat = Array.create 4 0.0f
            Expect.equal (support (reference (Array.map float flat) 1.0 0 0.5)) [| true; true; false; false |] "reference: the lowest ids of a tie"
            let tokens, _ = sampleMany flat 1.0 0 0.5 20_000
            expectFrequencies "top-p 0.5 over a four-way tie" (reference (Array.map float flat) 1.0 0 0.5) tokens
            // greedy draws no uniform and takes the first maximum
            let tokens, logps = sampleMany [| 0.0f; 3.0f; 3.0f; 1.0f |] 0.0 0 1.0 10
            Expect.isTrue (tokens |> Array.forall ((=) 1)) "greedy: the first maximum"
            Expect.isTrue (logps |> Array.forall (fun l -> l < 0.0f)) "greedy log-probs under the raw model"

        testCase "a sample's tokens are the same alone and in a batch of other prompts (static and continuous)" <| fun () ->
            use model = loadModel (tinyModel.Force())
            let a = [| 65; 66; 67 |]
            let others = [ for i in 0 .. 5 -> Array.init (1 + 3 * i) (fun k -> 70 + k + i) ]
            let req (prompts: int[] list) = GenerateRequest(Array.ofList prompts, 3, 1.0, 0.9, 20, 12, 7L, StopTokenIds = stops)
            let ofPrompt i (gs: seq<Generated>) = [ for g in gs do if g.PromptIndex = i then yield List.ofArray g.Tokens ]
            use continuous = new ContinuousBatcher(model, 256, maxRows = 4)
            let engines : (string * IRolloutEngine) list =
                [ "static", KvCacheSampler(model, 256); "static in chunks of 2 rows", KvCacheSampler(model, 256, MaxRows = 2); "continuous", continuous ]
            let alone = KvCacheSampler(model, 256).Generate(req [ a ]) |> ofPrompt 0
            Expect.equal alone.Length 3 "three samples"
            for name, e in engines do
                Expect.equal (e.Generate(req [ a ]) |> ofPrompt 0) alone (sprintf "%s: alone" name)
                Expect.equal (e.Generate(req (a :: others)) |> ofPrompt 0) alone (sprintf "%s: first of seven prompts" name)
                // at index 3 among other neighbours: the same stream wherever the others are
                let x = e.Generate(req [ others.[0]; others.[1]; others.[2]; a; others.[3] ]) |> ofPrompt 3
                let y = e.Generate(req [ others.[5]; others.[4]; others.[1]; a ]) |> ofPrompt 3
                Expect.equal y x (sprintf "%s: prompt 3 among other prompts" name)
            Expect.notEqual (KvCacheSampler(model, 256).Generate(GenerateRequest([| a |], 3, 1.0, 0.9, 20, 12, 8L, StopTokenIds = stops)) |> ofPrompt 0) alone
                "another seed gives other tokens (negative control)"

        testCase "ids the tokenizer lacks are never sampled (model vocabulary larger than the tokenizer's), in both engines" <| fun () ->
            // vocab 400 and a tokenizer of 8 ids: untrained logits put ≈ 98 % of the mass on ids ≥ 8
            use model = new SimKO.Host.Model.CausalLM(SimKO.Host.Model.ModelConfig.Tiny(400, dModel = 32, layers = 1, heads = 4, kvHeads = 2, maxPositions = 64))
            model.InitWeights 3L
            model.eval() |> ignore
            let limit = 8
            let req t = GenerateRequest([| [| 1; 2; 3 |]; [| 4 |] |], 4, t, 1.0, 0, 10, 11L)
            use continuous = new ContinuousBatcher(model, 0, maxRows = 4, SampledVocab = limit)
            let engines : (string * IRolloutEngine) list = [ "static", KvCacheSampler(model, 0, SampledVocab = limit); "continuous", continuous ]
            for name, e in engines do
                for t in [ 1.0; 0.0 ] do
                    let gs = e.Generate(req t)
                    let ids = gs |> Seq.collect (fun g -> g.Tokens) |> Array.ofSeq
                    Expect.equal ids.Length 80 (sprintf "%s T=%g: 8 responses of 10 tokens" name t)
                    Expect.isTrue (ids |> Array.forall (fun i -> i >= 0 && i < limit)) (sprintf "%s T=%g: every id below the tokenizer's %d: %A" name t limit ids)
                    // log-probs are those of the masked distribution: renormalised over the 8 ids, so not tiny
                    if t = 1.0 then
                        let lps = gs |> Seq.collect (fun g -> g.SamplerLogProbs) |> Array.ofSeq
                        Expect.isGreaterThan (Array.average lps) (-log 8.0 - 1.5 |> float32) (sprintf "%s: log-probs renormalised over the tokenizer's ids" name)
            // negative control: without the limit the extra ids dominate
            let unmasked = KvCacheSampler(model, 0).Generate(req 1.0) |> Seq.collect (fun g -> g.Tokens) |> Array.ofSeq
            Expect.isTrue (unmasked |> Array.exists (fun i -> i >= limit)) "without SampledVocab ids beyond the tokenizer are sampled"
            // the sampler itself: logits favouring ids 3 and 4 beyond a limit of 3
            use _ = torch.NewDisposeScope()
            let logits = torch.tensor([| 0.0f; 0.0f; 1.0f; 9.0f; 9.0f |]).reshape(1L, 5L).expand(64L, 5L).contiguous()
            let struct (tokens, _) = TokenSampler.Sample(logits, Array.create 64 (TokenFilter(1.0, 0, 1.0)), Array.init 64 (fun k -> SequenceRng(int64 k)), 3)
            Expect.isTrue (tokens |> Array.forall (fun i -> i < 3)) (sprintf "sampler: no id ≥ 3: %A" tokens)

        testCase "simko serve of a model whose vocabulary is larger than its tokenizer's never samples the ids the tokenizer lacks" <| fun () ->
            let dir = tinyModel.Force()
            let tok = SimKO.Host.Checkpoints.HfFolder.LoadTokenizer dir
            use model = new SimKO.Host.Model.CausalLM(SimKO.Host.Model.ModelConfig.Tiny(tok.VocabSize + 200, dModel = 32, layers = 1, heads = 4, kvHeads = 2, maxPositions = 64))
            model.InitWeights 5L
            model.eval() |> ignore
            let server =
                SimKO.Host.Serving.SimkoServer.StartAsync(model, tok, SimKO.Host.Serving.ChatMarkup.FromFolder(dir, tok), "big-vocab", options,
                                                          Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).GetAwaiter().GetResult()
            try
                let gs = server.Engine.Generate(GenerateRequest([| [| 65; 66 |]; [| 67 |] |], 4, 1.0, 1.0, 0, 10, 3L))
                let ids = gs |> Seq.collect (fun g -> g.Tokens) |> Array.ofSeq
                Expect.isNonEmpty ids "tokens sampled"
                Expect.isTrue (ids |> Array.forall (fun i -> i < tok.VocabSize)) (sprintf "every id below the tokenizer's %d: %A" tok.VocabSize ids)
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()

        testCase "one seed gives the same tokens in process (static and continuous), through simko serve and through the server client" <| fun () ->
            withServer options <| fun server _ ->
                let req = GenerateRequest([| [| 65; 66; 67 |]; [| 68; 69 |]; [| 70 |] |], 3, 0.9, 0.95, 30, 10, 5L, StopTokenIds = stops)
                use local = loadModel (tinyModel.Force())
                let inStatic = KvCacheSampler(local, 256).Generate(req)
                use engine = new ContinuousBatcher(local, 256, maxRows = 4)
                let inContinuous = engine.Generate(req)
                use c = new ServerRolloutClient(RolloutClientOptions(server.Url, RolloutServer.Simko, Concurrency = 2))
                let remote = c.Generate(req)
                Expect.equal (tokensOf inContinuous) (tokensOf inStatic) "continuous = static"
                Expect.equal (tokensOf remote) (tokensOf inStatic) "server client = in process"
                for a, b in Seq.zip remote inStatic do
                    for x, y in Seq.zip a.SamplerLogProbs b.SamplerLogProbs do Expect.isLessThan (abs (x - y)) 1e-4f "same log-probs"
                // a plain completions request for prompt 1 with that prompt's seed
                let status, body, _ =
                    post (server.Url + "/v1/completions")
                         (json [ "prompt", ints [ 68; 69 ]; "n", jv 3; "seed", jv (RolloutSeeds.Prompt(5L, 1)); "max_tokens", jv 10
                                 "temperature", jv 0.9; "top_p", jv 0.95; "top_k", jv 30; "logprobs", jv 0; "return_tokens_as_token_ids", jv true ]) None
                Expect.equal status 200 (string body)
                let served =
                    [ for ch in body.["choices"].AsArray() -> ch.["index"].GetValue<int>(), ch ]
                    |> List.sortBy fst
                    |> List.map (fun (_, ch) -> [ for t in ch.["logprobs"].["tokens"].AsArray() -> int (t.GetValue<string>().Substring 9) ])
                Expect.equal served [ for g in inStatic do if g.PromptIndex = 1 then yield List.ofArray g.Tokens ] "simko serve = in process"
    ]
