/// Entropy gates (SPEC §3 "forking tokens"): which response tokens count as high-entropy.
module SimKO.Math.Gates

open TorchSharp
open SimKO.Math.Tensors

/// Where the entropy threshold τ comes from.
type EntropyGate =
    /// Every valid token is gated in.
    | AllTokens
    /// τ = q-quantile of H over the valid tokens of *each response* (the SimKO authors' choice).
    | ResponseQuantile of q: float
    /// τ = q-quantile of H over all valid tokens of the whole mini-batch, computed once before
    /// it is split into micro-batches (`batchThreshold`) and passed to `gate`; top-ρ entropy is
    /// `BatchQuantile (1 − ρ)` (the forking-tokens baseline).
    | BatchQuantile of q: float

let validate (gate: EntropyGate) : string list =
    match gate with
    | ResponseQuantile q | BatchQuantile q when not (q >= 0.0 && q <= 1.0) ->
        [ sprintf "entropy quantile q must be in [0, 1], got %g" q ]
    | _ -> []

/// Row-wise q-quantile with linear interpolation (as torch.quantile: position q·(n−1) among the
/// n valid values, sorted). `values`, `mask`: [R; N], mask 0/1. Returns [R]; +∞ for an empty row.
let rowQuantile (q: float) (values: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    let valid = mask.gt(sc (0.0))
    let filled = values.masked_fill(valid.logical_not(), sc System.Double.PositiveInfinity) // [R; N]
    let struct (sorted, _) = filled.sort(1L, false, true)                                // [R; N], valid first
    let n = valid.sum(1L, false, torch.ScalarType.Int64)                                 // [R]
    let last = (n - sci 1L).clamp_min(sci 0L)                                      // [R]
    let pos = last.to_type(values.dtype) * q                                             // [R]
    let lo = pos.floor().to_type(torch.ScalarType.Int64)
    let hi = torch.minimum(lo + sci 1L, last)
    let vLo = sorted.gather(1L, lo.unsqueeze(1L)).squeeze(1L)
    let vHi = sorted.gather(1L, hi.unsqueeze(1L)).squeeze(1L)
    let frac = pos - lo.to_type(values.dtype)
    // inf − inf would give NaN for empty rows; take vLo there.
    let interp = torch.where(vHi.isfinite(), vLo + (vHi - vLo) * frac, vLo)
    interp

/// Per-row threshold τ `[R]`. q = 0 means "every valid token" (τ = −∞): the strict `H > τ`
/// would otherwise always leave out the lowest-entropy token.
let private threshold (q: float) (values: Tensor) (mask: Tensor) =
    if q <= 0.0 then torch.full([| values.shape[0] |], sc System.Double.NegativeInfinity, System.Nullable values.dtype, values.device)
    else rowQuantile q values mask

/// τ of a batch-level gate over every valid token of `entropy [B; T]` under `mask [B; T]` (0/1):
/// `Some τ` for `BatchQuantile q` (−∞ for q = 0; +∞ when no token is valid, so nothing is gated),
/// `None` for the gates whose τ is per response or absent. The trainer calls it once per
/// mini-batch, on all its rows, and hands τ to every micro-batch (SPEC §3, §7.8).
let batchThreshold (g: EntropyGate) (entropy: Tensor) (mask: Tensor) : float option =
    match g with
    | BatchQuantile q ->
        use _ = torch.no_grad()
        Some(value (threshold q (entropy.reshape(1L, -1L)) (mask.reshape(1L, -1L))))
    | AllTokens | ResponseQuantile _ -> None

/// Gate w = 1[H > τ] on valid tokens: entropy `[B; T]`, mask `[B; T]` → `[B; T]` 0/1, no grad.
/// `batchTau`: the τ of a `BatchQuantile` gate over the whole mini-batch (`batchThreshold`);
/// `None` takes it over this `entropy`/`mask`, right only when the batch is not split. The other
/// gates ignore it.
let gate (g: EntropyGate) (batchTau: float option) (entropy: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    match g with
    | AllTokens -> mask.clone()
    | ResponseQuantile q ->
        let tau = threshold q entropy mask                                                // [B]
        entropy.gt(tau.unsqueeze(1L)) |> asFloat mask |> fun w -> w * mask
    | BatchQuantile _ ->
        let tau = match batchTau with Some t -> t | None -> (batchThreshold g entropy mask).Value
        entropy.gt(sc tau) |> asFloat mask |> fun w -> w * mask
