using SimKO.Host.Diagnostics;
using Microsoft.FSharp.Core;
using SimKO.Math;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// SimKO's cost over GRPO at a real vocabulary (Qwen's V = 151,936): the same LM head, the same
/// batch, forward + loss + backward, timed (median of repetitions after warm-up) and the peak
/// resident memory of each phase measured separately. The head is where V enters the step, so
/// this isolates what SimKO adds (top-K of the logits, K gathers, the entropy gate).
/// </summary>
public static class LossOverheadBench
{
    public sealed record Result(int Vocab, int Tokens, int Hidden, double GrpoSeconds, double SimkoSeconds,
        long GrpoPeakBytes, long SimkoPeakBytes, long BaselineBytes)
    {
        public double TimeRatio => SimkoSeconds / GrpoSeconds;
        /// <summary>Ratio of the peaks above the memory held before the phase began.</summary>
        public double MemoryRatio => (double)(SimkoPeakBytes - BaselineBytes) / System.Math.Max(1, GrpoPeakBytes - BaselineBytes);
    }

    public static Result Run(Device device, int vocab = 151_936, int batch = 8, int length = 64, int hidden = 256, int reps = 5)
    {
        var gen = new Generator(17, device);
        var hiddenStates = randn([batch, length, hidden], generator: gen, device: device) * 0.5;
        var head = (randn([hidden, vocab], generator: gen, device: device) * 0.02).requires_grad_(true);
        var tokens = randint(vocab, [batch, length], generator: gen, device: device);
        var mask = ones(batch, length, device: device);
        var rewards = tensor(Enumerable.Range(0, batch).Select(i => (double)(i % 2)).ToArray(), ScalarType.Float32, device: device);
        Tensor old;
        using (no_grad())
            old = hiddenStates.matmul(head).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - 0.01;
        var grpo = Methods.objective(Methods.Method.NewGrpo(new Methods.GrpoSettings(Methods.commonDefaults)));
        var simko = Methods.objective(Methods.Method.NewSimko(Methods.simkoDefaults));

        void Step(Objective.Objective o)
        {
            using var scope = NewDisposeScope();
            var logits = hiddenStates.matmul(head);                                // [B, T, V]
            var adv = Advantages.compute(o.Advantage, 2, rewards);
            var b = new Objective.PolicyBatch(logits, tokens, old, FSharpOption<Tensor>.None, mask, adv, Objective.selfContext(mask));
            Objective.loss(o, b).Loss.backward();
            head.grad!.zero_();
        }

        var (baseline, _) = ProcessMemory.Read();
        ProcessMemory.ResetPeak();
        var (grpoTime, _) = Measure.Time(() => Step(grpo), warmup: 1, reps: reps);
        var grpoPeak = ProcessMemory.Read().Peak;
        ProcessMemory.ResetPeak();
        var (simkoTime, _) = Measure.Time(() => Step(simko), warmup: 1, reps: reps);
        var simkoPeak = ProcessMemory.Read().Peak;
        return new Result(vocab, batch * length, hidden, grpoTime, simkoTime, grpoPeak, simkoPeak, baseline);
    }
}
