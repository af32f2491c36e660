using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>The trainer's view of a policy network: logits for token ids, and its parameters.</summary>
public interface IPolicy
{
    /// <summary>Logits [B, T, V] (float32) for <paramref name="inputIds"/> [B, T] (int64) and
    /// <paramref name="attentionMask"/> [B, T] (1 = real token, 0 = padding; prompts are left-padded).</summary>
    Tensor Logits(Tensor inputIds, Tensor attentionMask);

    /// <summary>Trainable parameters by checkpoint name.</summary>
    IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> NamedParameters { get; }

    Device Device { get; }

    /// <summary>Final hidden states [B, T, d] (the LM head's input) and the head's weight [V, d], for
    /// the fused, chunked LM head; null when the policy does not expose them (then whole logits are used).</summary>
    (Tensor Hidden, Tensor HeadWeight)? HiddenAndHead(Tensor inputIds, Tensor attentionMask) => null;

    /// <summary>Switch between training and evaluation behaviour.</summary>
    void SetTraining(bool training);
}
