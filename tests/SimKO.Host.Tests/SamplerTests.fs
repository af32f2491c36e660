/// The sampling step: temperature, top-k, top-p, the draw and its log-probability.
module SimKO.Host.Tests.SamplerTests

open System
open Expecto
open TorchSharp
open SimKO.Host.Rollout

let private settings t p k = SamplingSettings(Temperature = t, TopP = p, TopK = k)

/// logits of probabilities [0.5; 0.3; 0.15; 0.05] (one row).
let private fourWay () = torch.tensor([| 0.5f; 0.3f; 0.15f; 0.05f |]).log().unsqueeze(0)

let private kept (logp: torch.Tensor) = logp.isfinite().sum().ToInt64()

let tests =
    testList "sampler" [
        test "temperature divides the logits before the softmax" {
            use z = torch.tensor([| 1.0f; 2.0f; -0.5f |]).unsqueeze(0)
            use got = Sampler.SamplingLogProbs(z, settings 0.5 1.0 0)
            use want = (z / 0.5).log_softmax(-1)
            Expect.isTrue (got.allclose(want, 1e-6, 1e-6)) "log_softmax(z / T)"
        }
        test "top-k keeps exactly the k largest and renormalises" {
            use z = torch.tensor([| 0.1f; 3.0f; -1.0f; 2.0f; 0.5f |]).unsqueeze(0)
            use lp = Sampler.SamplingLogProbs(z, settings 1.0 1.0 2)
            Expect.equal (kept lp) 2L "two tokens"
            Expect.isTrue (lp.[0, 1].isfinite().ToBoolean() && lp.[0, 3].isfinite().ToBoolean()) "the two largest"
            Expect.floatClose Accuracy.high (lp.exp().sum().ToDouble()) 1.0 "sums to one"
        }
        test "top-p keeps the smallest prefix whose mass reaches p" {
            for p, n in [ 0.5, 1L; 0.7, 2L; 0.79, 2L; 0.81, 3L; 0.96, 4L; 1.0, 4L ] do
                use lp = Sampler.SamplingLogProbs(fourWay (), settings 1.0 p 0)
                Expect.equal (kept lp) n (sprintf "top_p %g keeps %d" p n)
            use lp = Sampler.SamplingLogProbs(fourWay (), settings 1.0 0.7 0)
            Expect.floatClose Accuracy.high (lp.[0, 0].exp().ToDouble()) (0.5 / 0.8) "renormalised"
        }
        test "greedy takes the argmax with log-probability 0" {
            use z = torch.tensor([| 0.1f; 3.0f; -1.0f; 2.0f; 0.5f; 4.0f; 0.0f; 1.0f |]).reshape(2L, 4L)
            use g = new torch.Generator(1UL, torch.CPU)
            let struct (tok, lp) = Sampler.Sample(z, settings 0.0 1.0 0, g)
            Expect.sequenceEqual (tok.data<int64>().ToArray()) [| 1L; 1L |] "argmax"
            Expect.sequenceEqual (lp.data<float32>().ToArray()) [| 0.0f; 0.0f |] "delta distribution"
        }
        test "draws follow the sampling distribution and report its log-probabilities" {
            let n = 6000L
            use z = fourWay().expand(n, 4L).contiguous()
            use g = new torch.Generator(3UL, torch.CPU)
            let struct (tok, lp) = Sampler.Sample(z, settings 1.0 0.81 0, g)
            let toks = tok.data<int64>().ToArray()
            let freq i = float (toks |> Array.filter ((=) i) |> Array.length) / float n
            Expect.equal (freq 3L) 0.0 "the nucleus excludes the 0.05 token"
            for i, p in [ 0L, 0.5 / 0.95; 1L, 0.3 / 0.95; 2L, 0.15 / 0.95 ] do
                Expect.isLessThan (abs (freq i - p)) 0.03 (sprintf "token %d: %f vs %f" i (freq i) p)
            let lps = lp.data<float32>().ToArray()
            for j in 0 .. 20 do
                let want = [| 0.5 / 0.95; 0.3 / 0.95; 0.15 / 0.95 |].[int toks.[j]]
                Expect.floatClose Accuracy.medium (float lps.[j]) (log want) "log p of the drawn token"
        }
        test "the same seed gives the same draws and another seed other draws" {
            use z = torch.zeros([| 200L; 50L |])
            let draw seed =
                use g = new torch.Generator(seed, torch.CPU)
                let struct (tok, _) = Sampler.Sample(z, settings 1.0 1.0 0, g)
                tok.data<int64>().ToArray()
            Expect.equal (draw 5UL) (draw 5UL) "same seed"
            Expect.notEqual (draw 5UL) (draw 6UL) "other seed"
        }
        test "invalid settings list every problem" {
            let s = SamplingSettings(Temperature = -1.0, TopP = 0.0, TopK = -2, MaxNewTokens = 0, SamplesPerPrompt = 0)
            Expect.equal (s.Validate().Count) 5 "five problems"
        }
    ]
