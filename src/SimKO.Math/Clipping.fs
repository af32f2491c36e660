/// PPO's clipped surrogate per token (SPEC §2): L = max(−A·γ̃, −A·clip(γ̃, 1−ε_low, 1+ε_high)),
/// with the optional dual clip for negative advantages (L ≤ −A·c).
module SimKO.Math.Clipping

open TorchSharp
open SimKO.Math.Tensors

type ClipSettings =
    { /// ε_low (default 0.2).
      Low: float
      /// ε_high (0.2 symmetric; 0.28 for DAPO's clip-higher).
      High: float
      /// dual-clip constant c > 1 for A < 0 (None = off).
      Dual: float option }

let defaults = { Low = 0.2; High = 0.2; Dual = None }

let validate (c: ClipSettings) : string list =
    [ if not (c.Low > 0.0 && c.Low < 1.0) then yield sprintf "clip_low must be in (0, 1), got %g" c.Low
      if not (c.High > 0.0) then yield sprintf "clip_high must be > 0, got %g" c.High
      match c.Dual with
      | Some d when not (d > 1.0) -> yield sprintf "dual_clip must be > 1, got %g" d
      | _ -> () ]

type ClippedLoss =
    { /// [B; T] per-token surrogate loss.
      Loss: Tensor
      /// [B; T] 0/1: where the clipped branch was taken (its gradient is zero).
      Clipped: Tensor }

/// `ratio [B; T]` is γ̃ (its value is the importance ratio; its gradient may be shaped),
/// `advantages [B; T]`.
let surrogate (clip: ClipSettings) (ratio: Tensor) (advantages: Tensor) : ClippedLoss =
    let unclipped = advantages.neg() * ratio
    let clippedRatio = ratio.clamp(sc (1.0 - clip.Low), sc (1.0 + clip.High))
    let clippedLoss = advantages.neg() * clippedRatio
    let loss = torch.maximum(unclipped, clippedLoss)
    let tookClip = clippedLoss.gt(unclipped)
    match clip.Dual with
    | None -> { Loss = loss; Clipped = asFloat ratio tookClip }
    | Some c ->
        let cap = advantages.neg() * c
        let negative = advantages.lt(sc (0.0))
        let dual = negative.logical_and(loss.gt(cap))
        { Loss = torch.where(dual, torch.minimum(loss, cap), loss)
          Clipped = asFloat ratio (tookClip.logical_or(dual)) }
