/// A plain `float[]` reference of the GRPO and SimKO losses (SPEC §2–3), written with loops and
/// no tensors, that the TorchSharp version must agree with (STYLE habit 7). Layout: logits are
/// row-major [B; T; V], per-token arrays [B; T], per-response arrays [B].
module SimKO.Tests.Reference

type Batch =
    { B: int; T: int; V: int
      Logits: float[]
      Tokens: int[]
      Old: float[]
      Mask: float[]
      Adv: float[] }

type Settings =
    { Alpha: float; K: int; Lambda: float
      /// entropy quantile of the gate; None = SimKO off (GRPO).
      Q: float option
      /// τ over all valid tokens of the batch instead of per response.
      BatchGate: bool
      ClipLow: float; ClipHigh: float }

let logSoftmax (row: float[]) =
    let m = Array.max row
    let lse = m + log (row |> Array.sumBy (fun z -> exp (z - m)))
    row |> Array.map (fun z -> z - lse)

let entropyOf (lp: float[]) = -(lp |> Array.sumBy (fun l -> exp l * l))

/// Indices of the k largest values, largest first.
let topK (k: int) (row: float[]) =
    row |> Array.mapi (fun i z -> i, z) |> Array.sortByDescending snd |> Array.take k |> Array.map fst

/// q-quantile with linear interpolation at position q·(n−1) (torch.quantile's rule).
let quantile (q: float) (xs: float[]) =
    let s = Array.sort xs
    let pos = q * float (s.Length - 1)
    let lo = int (floor pos)
    let hi = min (lo + 1) (s.Length - 1)
    s.[lo] + (s.[hi] - s.[lo]) * (pos - float lo)

/// GRPO advantages: (r − mean)/(std + 1e-6), unbiased std, per consecutive group of g.
let grpoAdvantages (g: int) (rewards: float[]) =
    rewards
    |> Array.chunkBySize g
    |> Array.collect (fun grp ->
        let mean = Array.average grp
        let std = sqrt ((grp |> Array.sumBy (fun r -> (r - mean) ** 2.0)) / float (g - 1))
        grp |> Array.map (fun r -> (r - mean) / (std + 1e-6)))

let private row (b: Batch) i t = Array.sub b.Logits ((i * b.T + t) * b.V) b.V

/// Entropy of every token [B·T] (masked ones too).
let entropies (b: Batch) =
    Array.init (b.B * b.T) (fun j -> entropyOf (logSoftmax (row b (j / b.T) (j % b.T))))

/// Gate of each token: H > τ with τ the q-quantile of the valid entropies of its response (or, with
/// `BatchGate`, of the whole batch); q = 0: every valid token.
let gates (s: Settings) (b: Batch) : bool[] =
    let ent = entropies b
    let allValid = [| for j in 0 .. b.B * b.T - 1 do if b.Mask.[j] > 0.0 then yield ent.[j] |]
    Array.init (b.B * b.T) (fun j ->
        let i = j / b.T
        match s.Q with
        | None -> false
        | Some q ->
            let valid =
                if s.BatchGate then allValid
                else [| for t in 0 .. b.T - 1 do if b.Mask.[i * b.T + t] > 0.0 then yield ent.[i * b.T + t] |]
            b.Mask.[j] > 0.0 && (q <= 0.0 || ent.[j] > quantile q valid))

/// What SimKO does at one valid token j: its sampled token y, top-K set, ratio γ, shaped advantage
/// A′ (λA on gated negative top-1 tokens), smoothing weight α′ (α on gated positive tokens), and
/// whether PPO's clipped branch is strictly taken (then the token has no gradient).
type private TokenTerms =
    { J: int; Y: int; Top: int[]; LogProbs: float[]; Gamma: float; A: float; Alpha: float; Loss: float; ClippedOff: bool }

let private tokenTerms (s: Settings) (b: Batch) : TokenTerms[] =
    let w = gates s b
    [| for i in 0 .. b.B - 1 do
         for t in 0 .. b.T - 1 do
             let j = i * b.T + t
             if b.Mask.[j] > 0.0 then
                 let z = row b i t
                 let lp = logSoftmax z
                 let y = b.Tokens.[j]
                 let top = topK (min (max s.K 1) b.V) z
                 let gamma = exp (lp.[y] - b.Old.[j])
                 let a = b.Adv.[i]
                 let a' = if w.[j] && a < 0.0 && y = top.[0] then s.Lambda * a else a
                 let alpha' = if w.[j] && a > 0.0 then s.Alpha else 0.0
                 let clipped = min (max gamma (1.0 - s.ClipLow)) (1.0 + s.ClipHigh)
                 let l1, l2 = -a' * gamma, -a' * clipped
                 yield { J = j; Y = y; Top = top; LogProbs = lp; Gamma = gamma; A = a'; Alpha = alpha'
                         Loss = max l1 l2; ClippedOff = l2 > l1 } |]

/// token-mean loss and its gradient w.r.t. the logits, from the closed forms:
/// value Σ max(−A′γ, −A′clip(γ)) / N, gradient A′·γ·[p − ((1−α′)e_y + (α′/K)Σ_k e_{c_k})] / N on
/// unclipped tokens (α′ = α on gated positive tokens, A′ = λA on gated negative top-1 tokens).
let lossAndGrad (s: Settings) (b: Batch) : float * float[] =
    let n = max 1.0 (Array.sum b.Mask)
    let grad = Array.zeroCreate (b.B * b.T * b.V)
    let terms = tokenTerms s b
    for x in terms do
        if not x.ClippedOff then
            for v in 0 .. b.V - 1 do
                let target =
                    (if v = x.Y then 1.0 - x.Alpha else 0.0)
                    + (if Array.contains v x.Top then x.Alpha / float x.Top.Length else 0.0)
                grad.[(x.J * b.V) + v] <- x.A * x.Gamma * (exp x.LogProbs.[v] - target) / n
    (terms |> Array.sumBy _.Loss) / n, grad

/// The surrogate whose ordinary gradient SimKO's loss has at the point `at` (γ and the top-K set
/// frozen there): J(z) = −Σ A′·γ₀·[(1−α′) log p_y(z) + (α′/K) Σ_k log p_{c_k}(z)] / N over
/// unclipped valid tokens. Finite differences of J check the gradient of the SimKO loss.
let surrogate (s: Settings) (at: Batch) : float[] -> float =
    let n = max 1.0 (Array.sum at.Mask)
    let frozen = tokenTerms s at |> Array.filter (fun x -> not x.ClippedOff)
    fun logits ->
        let mutable total = 0.0
        for x in frozen do
            let lp = logSoftmax (Array.sub logits (x.J * at.V) at.V)
            let smoothed = (1.0 - x.Alpha) * lp.[x.Y] + x.Alpha / float x.Top.Length * (x.Top |> Array.sumBy (fun c -> lp.[c]))
            total <- total - x.A * x.Gamma * smoothed
        total / n

/// Central finite differences of f at x, step h.
let finiteDifferences (h: float) (f: float[] -> float) (x: float[]) : float[] =
    Array.init x.Length (fun i ->
        let xp = Array.copy x
        let xm = Array.copy x
        xp.[i] <- x.[i] + h
        xm.[i] <- x.[i] - h
        (f xp - f xm) / (2.0 * h))

/// A token-mean loss Σ_j ℓ_j(log p_y) / N over valid tokens, where each token's loss depends on the
/// logits only through the log-prob of its sampled token: `term j logp` gives ℓ_j and dℓ_j/dlog p_y.
/// Value and gradient w.r.t. the logits (dℓ/dlog p_y · (e_y − p) per token).
let tokenLossAndGrad (b: Batch) (term: int -> float -> float * float) : float * float[] =
    let n = max 1.0 (Array.sum b.Mask)
    let grad = Array.zeroCreate (b.B * b.T * b.V)
    let mutable total = 0.0
    for j in 0 .. b.B * b.T - 1 do
        if b.Mask.[j] > 0.0 then
            let lp = logSoftmax (row b (j / b.T) (j % b.T))
            let y = b.Tokens.[j]
            let value, slope = term j lp.[y]
            total <- total + value
            for v in 0 .. b.V - 1 do
                grad.[j * b.V + v] <- slope * ((if v = y then 1.0 else 0.0) - exp lp.[v]) / n
    total / n, grad

/// PPO's clipped surrogate of one token with advantage `a` (ε = 0.2 both sides): value and slope
/// w.r.t. log p_y (0 where the clipped branch is strictly taken).
let clippedTerm (a: float) (old: float) (logp: float) =
    let gamma = exp (logp - old)
    let l1, l2 = -a * gamma, -a * (min (max gamma 0.8) 1.2)
    if l2 > l1 then l2, 0.0 else l1, -a * gamma

/// KL estimators of log π − log π_ref = d: value and derivative in d (Schulman's k1, k2, k3).
let klTerm (estimator: string) (d: float) =
    match estimator with
    | "k1" -> d, 1.0
    | "k2" -> 0.5 * d * d, d
    | "k3" -> exp (-d) + d - 1.0, 1.0 - exp (-d)
    | other -> failwithf "unknown estimator %s" other

/// Advantages of SPEC §2/§4 from rewards in consecutive groups of g, each estimator written from its
/// formula (correct = reward > 0).
module Advantages =
    let private groups g (r: float[]) = Array.chunkBySize g r
    let grpo g (r: float[]) = grpoAdvantages g r
    let drGrpo g (r: float[]) = groups g r |> Array.collect (fun grp -> let m = Array.average grp in grp |> Array.map (fun x -> x - m))
    let rloo g (r: float[]) =
        groups g r |> Array.collect (fun grp ->
            grp |> Array.mapi (fun i x -> x - (Array.sum grp - x) / float (g - 1)))
    let psr (r: float[]) = r |> Array.map (fun x -> if x > 0.0 then 1.0 else 0.0)
    let nsr (r: float[]) = r |> Array.map (fun x -> if x > 0.0 then 0.0 else -1.0)
    let wReinforce lambdaW (r: float[]) = r |> Array.map (fun x -> if x > 0.0 then lambdaW else -1.0)
    /// C(n, k) from Pascal's triangle (0 outside 0 ≤ k ≤ n).
    let choose (n: int) (k: int) =
        if n < 0 || k < 0 || k > n then 0.0
        else
            let row = Array.zeroCreate (n + 1)
            row.[0] <- 1.0
            for i in 1 .. n do
                for j in i .. -1 .. 1 do row.[j] <- row.[j] + row.[j - 1]
            row.[k]
    let passAtK g k (r: float[]) =
        groups g r |> Array.collect (fun grp ->
            let c = grp |> Array.filter (fun x -> x > 0.0) |> Array.length
            let rho = 1.0 - choose (g - c) k / choose g k
            let sigma = sqrt (rho * (1.0 - rho))
            let aPos = (1.0 - rho) / (sigma + 1e-6)
            let aNeg = (1.0 - rho - choose (g - c - 1) (k - 1) / choose (g - 1) (k - 1)) / (sigma + 1e-6)
            grp |> Array.map (fun x -> if x > 0.0 then aPos else aNeg))

/// AdamW (Loshchilov and Hutter) on one parameter vector over steps of (lr, gradient): m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
/// θ ← θ·(1 − lr·wd) − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε).
let adamW (beta1: float) (beta2: float) (eps: float) (wd: float) (theta0: float[]) (steps: (float * float[]) list) =
    let theta = Array.copy theta0
    let m = Array.zeroCreate theta.Length
    let v = Array.zeroCreate theta.Length
    steps |> List.iteri (fun i (lr, g) ->
        let t = float (i + 1)
        for j in 0 .. theta.Length - 1 do
            m.[j] <- beta1 * m.[j] + (1.0 - beta1) * g.[j]
            v.[j] <- beta2 * v.[j] + (1.0 - beta2) * g.[j] * g.[j]
            let mHat = m.[j] / (1.0 - beta1 ** t)
            let vHat = v.[j] / (1.0 - beta2 ** t)
            theta.[j] <- theta.[j] * (1.0 - lr * wd) - lr * mHat / (sqrt vHat + eps))
    theta
