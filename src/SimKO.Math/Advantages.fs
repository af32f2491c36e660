/// Advantage estimators (SPEC §2, §4): one value per response from the rewards of its group.
/// Rows are grouped consecutively: rows g·G .. g·G+G−1 answer the same prompt.
/// A response is "correct" when its reward is > 0 (rewards are 1 / 0 by default).
module SimKO.Math.Advantages

open System
open TorchSharp
open SimKO.Math.Tensors

/// Added to the group std (and to σ of Pass@k training) to avoid division by zero.
[<Literal>]
let Epsilon = 1e-6

/// How rewards become advantages.
type AdvantageEstimator =
    /// GRPO: (r − mean_g r) / (std_g r + ε) with the unbiased std; without the division when
    /// `divideByStd` is false (Dr. GRPO).
    | GroupNormalised of divideByStd: bool
    /// RLOO: r_i minus the mean reward of the other G − 1 responses.
    | LeaveOneOut
    /// PSR: train only on correct responses, A = +1 (0 for incorrect).
    | PositiveOnly
    /// NSR: train only on incorrect responses, A = −1 (0 for correct).
    | NegativeOnly
    /// W-REINFORCE: A = +λ_w for correct, −1 for incorrect (paper default λ_w = 0.1).
    | WeightedReinforce of lambdaW: float
    /// Pass@k training (Chen et al.): advantages of the pass@k objective for a group of N
    /// rollouts with c correct (SPEC §4).
    | PassAtKTraining of k: int

/// The estimator's name in messages.
let describe (estimator: AdvantageEstimator) =
    match estimator with
    | GroupNormalised true -> "group-normalised advantage (GRPO)"
    | GroupNormalised false -> "group-centred advantage (Dr. GRPO)"
    | LeaveOneOut -> "leave-one-out advantage (RLOO)"
    | PositiveOnly -> "PSR advantage"
    | NegativeOnly -> "NSR advantage"
    | WeightedReinforce _ -> "W-REINFORCE advantage"
    | PassAtKTraining _ -> "pass@k-training advantage"

/// Every problem with an estimator for a given group size, at once.
let validate (groupSize: int) (estimator: AdvantageEstimator) : string list =
    [ if groupSize < 1 then yield sprintf "group_size must be >= 1, got %d" groupSize
      match estimator with
      | GroupNormalised true | LeaveOneOut when groupSize < 2 ->
          yield sprintf "the %s needs group_size >= 2 (a std or leave-one-out mean of one response is undefined), got %d" (describe estimator) groupSize
      | WeightedReinforce w when not (w >= 0.0) -> yield sprintf "lambda_w must be >= 0, got %g" w
      | PassAtKTraining k when k < 1 || k > groupSize ->
          yield sprintf "pass@k training needs 1 <= k <= group_size = %d, got k = %d" groupSize k
      | _ -> () ]

/// Pass@k-training advantages for a group of `n` rollouts with `c` correct:
/// (A for a correct response, A for an incorrect one). Product forms, no factorials.
let passAtKAdvantages (n: int) (c: int) (k: int) : float * float =
    // C(n−c, k) / C(n, k) = Π_{j=0..k−1} (n−c−j)/(n−j)   (0 when n − c < k)
    let allWrong = if n - c < k then 0.0 else Seq.fold (fun acc j -> acc * float (n - c - j) / float (n - j)) 1.0 [ 0 .. k - 1 ]
    let rho = 1.0 - allWrong
    let sigma = sqrt (rho * (1.0 - rho))
    // C(n−c−1, k−1) / C(n−1, k−1)
    let restWrong =
        if n - c - 1 < k - 1 then 0.0
        else Seq.fold (fun acc j -> acc * float (n - c - 1 - j) / float (n - 1 - j)) 1.0 [ 0 .. k - 2 ]
    let aPos = (1.0 - rho) / (sigma + Epsilon)
    let aNeg = (1.0 - rho - restWrong) / (sigma + Epsilon)
    aPos, aNeg

/// Advantages `[B]` from rewards `[B]` (B a multiple of `groupSize`), same dtype/device.
let compute (estimator: AdvantageEstimator) (groupSize: int) (rewards: Tensor) : Tensor =
    requireShape "rewards" [| -1L |] rewards
    let b = rewards.shape[0]
    if groupSize < 1 || b % int64 groupSize <> 0L then
        invalidArg "rewards" (sprintf "%d rewards do not split into groups of %d" b groupSize)
    match validate groupSize estimator with
    | [] -> ()
    | problems -> invalidArg "estimator" (String.Join("; ", problems))
    use _ = torch.no_grad()
    let grouped = rewards.reshape(-1L, int64 groupSize)                            // [B/G; G]
    let correct = rewards.gt(sc (0.0)) |> asFloat rewards                  // [B]
    match estimator with
    | GroupNormalised divideByStd ->
        // A constant group's mean of equal floats can round in the last bit; its advantage is 0 exactly.
        let constant = grouped.amax([| 1L |], keepdim = true).eq(grouped.amin([| 1L |], keepdim = true))
        let centred = (grouped - grouped.mean([| 1L |], keepdim = true)).masked_fill(constant, sc 0.0)
        let a = if divideByStd then centred / (grouped.std(1L, true, true) + Epsilon) else centred
        a.reshape(-1L)
    | LeaveOneOut ->
        let g = float groupSize
        let constant = grouped.amax([| 1L |], keepdim = true).eq(grouped.amin([| 1L |], keepdim = true))
        let centred = (grouped - grouped.mean([| 1L |], keepdim = true)).masked_fill(constant, sc 0.0)
        // r_i − mean of the others = G/(G−1)·(r_i − mean)
        (centred * (g / (g - 1.0))).reshape(-1L)
    | PositiveOnly -> correct
    | NegativeOnly -> correct - 1.0
    | WeightedReinforce lambdaW -> correct * (lambdaW + 1.0) - 1.0
    | PassAtKTraining k ->
        let flags = correct.to_type(torch.ScalarType.Float64).data<float>().ToArray()
        let values =
            flags
            |> Array.chunkBySize groupSize
            |> Array.collect (fun group ->
                let c = group |> Array.sumBy (fun f -> if f > 0.5 then 1 else 0)
                let aPos, aNeg = passAtKAdvantages groupSize c k
                group |> Array.map (fun f -> if f > 0.5 then aPos else aNeg))
        ofArrayLike rewards values
