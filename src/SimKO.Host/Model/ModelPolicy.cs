using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>A <see cref="CausalLM"/> as the trainer's policy: logits in float32 whatever the model's dtype.
/// Its trainable parameters are the model's, or only its LoRA adapters when it has them (the base is frozen).</summary>
public sealed class ModelPolicy(CausalLM model) : IPolicy
{
    readonly IReadOnlyList<(string Name, Parameter Param)> _params = model.Lora is not null ? model.LoraParameters() : model.NamedParameters();

    public CausalLM Model => model;

    public Tensor Logits(Tensor inputIds, Tensor attentionMask) =>
        model.Forward(inputIds, attentionMask, CausalLM.PositionsFromMask(attentionMask)).to(ScalarType.Float32);

    public (Tensor Hidden, Tensor HeadWeight)? HiddenAndHead(Tensor inputIds, Tensor attentionMask) =>
        (model.Hidden(inputIds, attentionMask, CausalLM.PositionsFromMask(attentionMask)), model.HeadWeight);

    public IReadOnlyList<(string Name, Parameter Param)> NamedParameters => _params;

    public Device Device => model.model.embed_tokens.weight!.device;

    public void SetTraining(bool training)
    {
        if (training) model.train(); else model.eval();
    }
}

/// <summary>The base of a LoRA model as a frozen policy: forward with its adapters switched off (the KL
/// reference of a LoRA run, issue 22: no second copy of the weights). Not thread-safe with the policy's
/// own forward (the trainer runs them one after the other).</summary>
public sealed class AdaptersOffPolicy(CausalLM model) : IPolicy
{
    public Tensor Logits(Tensor inputIds, Tensor attentionMask) => Off(() => model.Forward(inputIds, attentionMask, CausalLM.PositionsFromMask(attentionMask)).to(ScalarType.Float32));

    public (Tensor Hidden, Tensor HeadWeight)? HiddenAndHead(Tensor inputIds, Tensor attentionMask) =>
        (Off(() => model.Hidden(inputIds, attentionMask, CausalLM.PositionsFromMask(attentionMask))), model.HeadWeight);

    T Off<T>(Func<T> f)
    {
        model.AdaptersEnabled = false;
        try { return f(); }
        finally { model.AdaptersEnabled = true; }
    }

    public IReadOnlyList<(string Name, Parameter Param)> NamedParameters => [];

    public Device Device => model.model.embed_tokens.weight!.device;

    public void SetTraining(bool training) { }
}
