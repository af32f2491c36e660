namespace SimKO.Host.Batches;

/// <summary>One sampled response of a prompt (group = its prompt's index), with its reward: what the
/// trainer, the warm-start and the evaluator pack into a <see cref="PackedBatch"/>.</summary>
public sealed record Sample(int Group, int[] Prompt, int[] Response, double Reward);
