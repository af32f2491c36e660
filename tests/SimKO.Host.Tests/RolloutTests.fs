/// The rollout engine: determinism, cache = no cache, stop conditions, layout of the result,
/// agreement of the sampler's log-probs with the trainer's forward, and no leaked tensors.
module SimKO.Host.Tests.RolloutTests

open System
open Expecto
open TorchSharp
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Tests.Helpers

let private tok = CharTokenizer "abcdefghij0123456789 +="
let private vocab = tok.VocabSize

let private model seed = CausalLM.CreateRandom(qwenTiny vocab, seed)

let private prompts = [| tok.Encode "ab+1"; tok.Encode "c"; tok.Encode "0123456789 =" |]

let private engine (m: CausalLM) useCache rows =
    KvCacheRolloutEngine(m, tok, RolloutEngineOptions(MaxBatchRows = rows, UseCache = useCache))

let private run (e: KvCacheRolloutEngine) (s: SamplingSettings) = e.Generate(RolloutRequest(prompts, s))

let private sampling = SamplingSettings(SamplesPerPrompt = 2, Temperature = 1.0, MaxNewTokens = 12, Seed = 17L)

let private idsOf (r: RolloutResult) = r.Responses |> Seq.map (fun x -> x.TokenIds) |> Seq.toList

let tests =
    testList "rollout" [
        test "responses come prompt-major with n samples each, within max new tokens" {
            use m = model 1L
            let r = run (engine m true 64) sampling
            Expect.equal r.Responses.Count 6 "3 prompts x 2"
            Expect.equal [ for x in r.Responses -> x.PromptIndex, x.SampleIndex ] [ 0, 0; 0, 1; 1, 0; 1, 1; 2, 0; 2, 1 ] "order"
            for x in r.Responses do
                Expect.isTrue (x.Length >= 1 && x.Length <= 12) "length"
                Expect.equal x.LogProbs.Length x.Length "one log-prob per token"
                Expect.isTrue (x.LogProbs |> Array.forall (fun v -> v <= 0.0f && Single.IsFinite v)) "log-probs are finite and <= 0"
                if x.FinishReason = FinishReason.Length then Expect.equal x.Length 12 "length finish"
                if x.FinishReason = FinishReason.Eos then Expect.equal (Array.last x.TokenIds) tok.EosId "eos is the last token"
                Expect.isFalse (x.TokenIds.[.. x.Length - 2] |> Array.contains tok.EosId) "nothing after eos"
            Expect.equal r.Stats.GeneratedTokens (r.Responses |> Seq.sumBy (fun x -> int64 x.Length)) "token count"
        }
        test "the same seed gives the same responses, another seed other ones" {
            use m = model 2L
            let e = engine m true 64
            let a, b = run e sampling, run e sampling
            Expect.equal (idsOf a) (idsOf b) "same tokens"
            Expect.equal [ for x in a.Responses -> x.LogProbs ] [ for x in b.Responses -> x.LogProbs ] "same log-probs"
            let c = run e (SamplingSettings(SamplesPerPrompt = 2, MaxNewTokens = 12, Seed = 18L))
            Expect.notEqual (idsOf a) (idsOf c) "other seed"
        }
        test "the KV cache and the full recomputation sample the same tokens" {
            use m = model 3L
            let greedy = SamplingSettings(Temperature = 0.0, MaxNewTokens = 10)
            Expect.equal (idsOf (run (engine m true 64) greedy)) (idsOf (run (engine m false 64) greedy)) "greedy"
            let a, b = run (engine m true 64) sampling, run (engine m false 64) sampling
            Expect.equal (idsOf a) (idsOf b) "sampled, same seed"
            for x, y in Seq.zip a.Responses b.Responses do
                for u, v in Array.zip x.LogProbs y.LogProbs do
                    Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float u) (float v) "log-probs"
        }
        test "greedy responses do not depend on how rows are batched (left padding)" {
            use m = model 4L
            let greedy = SamplingSettings(Temperature = 0.0, MaxNewTokens = 8, SamplesPerPrompt = 2)
            let whole = idsOf (run (engine m true 64) greedy)
            Expect.equal (idsOf (run (engine m true 1) greedy)) whole "one row at a time"
            Expect.equal (idsOf (run (engine m true 4) greedy)) whole "chunks of 4"
        }
        test "the sampler's log-probs equal the trainer's forward at temperature 1" {
            use m = model 5L
            let r = run (engine m true 64) sampling
            use batch = RolloutBatch.Build(prompts, r.Responses, tok.PadId, torch.CPU)
            use _ng = torch.no_grad ()
            use logits = m.forward(batch.InputIds, batch.AttentionMask)                 // [N, P+R, V]
            let p, rl = int64 batch.PromptLength, int64 batch.ResponseLength
            use scoring = logits.narrow(1, p - 1L, rl).log_softmax(-1)                   // [N, R, V]
            use lp = scoring.gather(-1, batch.ResponseIds.unsqueeze(-1)).squeeze(-1)    // [N, R]
            use masked = lp * batch.ResponseMask
            Expect.isLessThan (maxAbsDiff masked batch.SamplerLogProbs) 1e-4 "sampler = recomputed"
            Expect.equal (batch.ResponseMask.sum().ToInt64()) r.Stats.GeneratedTokens "mask counts response tokens"
        }
        test "a stop token id ends the response on that token" {
            use m = model 6L
            let free = run (engine m true 64) (SamplingSettings(Temperature = 0.0, MaxNewTokens = 10))
            let first = free.Responses.[2].TokenIds
            let stopAt = first.[3]
            let cut = Array.findIndex ((=) stopAt) first
            let r = run (engine m true 64) (SamplingSettings(Temperature = 0.0, MaxNewTokens = 10, StopTokenIds = [| stopAt |]))
            let x = r.Responses.[2]
            Expect.equal x.FinishReason FinishReason.Eos "finish reason"
            Expect.equal x.TokenIds first.[.. cut] "prefix up to and including the stop token"
        }
        test "a stop string ends the response on the token that completes it" {
            use m = model 7L
            let free = run (engine m true 64) (SamplingSettings(Temperature = 0.0, MaxNewTokens = 10))
            let x0 = free.Responses.[0]
            let text = tok.Decode(x0.TokenIds, skipSpecialTokens = false)
            let stop = text.Substring(2, 2)
            let r = run (engine m true 64) (SamplingSettings(Temperature = 0.0, MaxNewTokens = 10, StopStrings = [| stop |]))
            let x = r.Responses.[0]
            Expect.equal x.FinishReason FinishReason.StopString "finish reason"
            let got = tok.Decode x.TokenIds
            Expect.isTrue (got.EndsWith stop) (sprintf "%A ends with %A" got stop)
            Expect.equal got (text.Substring(0, text.IndexOf stop + stop.Length)) "first occurrence"
        }
        test "bad requests list their problems" {
            use m = model 8L
            let e = throws<ArgumentException> (fun () ->
                        (engine m true 64).Generate(RolloutRequest([| [||]; [| 999 |] |], SamplingSettings(TopP = 2.0))) |> ignore) "bad"
            Expect.stringContains e.Message "prompt 0 is empty" "empty prompt"
            Expect.stringContains e.Message "token id 999" "out of vocabulary"
            Expect.stringContains e.Message "TopP" "settings"
        }
        test "a 1,000-step sampling loop leaves no tensor alive" {
            use m = model 9L
            let stats = DisposeScopeManager.Statistics
            for useCache in [ true; false ] do
                let e = KvCacheRolloutEngine(m, tok.VocabSize + 1, tok.PadId, RolloutEngineOptions(UseCache = useCache))
                let steps = if useCache then 1000 else 100
                let before = stats.ThreadTotalLiveCount
                let r = e.Generate(RolloutRequest([| tok.Encode "ab"; tok.Encode "c" |], SamplingSettings(MaxNewTokens = steps, Seed = 1L)))
                Expect.equal r.Responses.[0].Length steps "ran every step (eos can never be drawn)"
                Expect.equal (stats.ThreadTotalLiveCount - before) 0L (sprintf "live tensors unchanged (cache = %b)" useCache)
        }
    ]
