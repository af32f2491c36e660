using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>A <see cref="CausalLM"/> as the trainer's policy: logits in float32 whatever the model's dtype.</summary>
public sealed class ModelPolicy(CausalLM model) : IPolicy
{
    readonly IReadOnlyList<(string Name, Parameter Param)> _params = model.NamedParameters();

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
