/// Per-token statistics of the current policy from one `log_softmax` pass over the vocabulary
/// (SPEC §1, §3 "Cost", §5): log-prob of the sampled token, entropy, top-K candidates and their
/// log-probs, and the Λ / Λ^(k) metrics. Memory is O(V) per token: the top-K log-probs are
/// gathered from the single log_softmax, never from K copies of the vocabulary.
module SimKO.Math.TokenStats

open TorchSharp
open SimKO.Math.Tensors

/// Statistics of the current policy at each response position.
type TokenStats =
    { /// [B; T] log π_θ(y) of the sampled token; carries the gradient to the logits.
      LogProbs: Tensor
      /// [B; T] entropy H = −Σ_v p_v log p_v; no gradient (it only gates and is reported).
      Entropy: Tensor
      /// [B; T; K] int64 indices c_1..c_K of the K largest logits, rank 1 first; no gradient.
      TopKIndices: Tensor
      /// [B; T; K] log π_θ(c_k); carries the gradient to the logits.
      TopKLogProbs: Tensor }

/// Λ metrics (paper Eq. 2, Figures 3 and 5), averaged over valid response tokens.
type Lambdas =
    { /// mean log-prob of the sampled token.
      Lambda: float
      /// Λ^(k) for k = 1..K: mean log-prob of the rank-k candidate.
      TopK: float[]
      /// mean token entropy.
      Entropy: float
      /// number of valid tokens the means are over.
      Tokens: float }

/// Statistics from logits `[B; T; V]` (the distribution that predicts `tokens [B; T]`, int64)
/// keeping the `k` top candidates. Needs 1 ≤ k ≤ V.
let compute (k: int) (logits: Tensor) (tokens: Tensor) : TokenStats =
    requireShape "logits" [| -1L; -1L; -1L |] logits
    requireShape "tokens" [| logits.shape[0]; logits.shape[1] |] tokens
    let vocab = logits.shape[2]
    if k < 1 || int64 k > vocab then
        invalidArg "k" (sprintf "top-K needs 1 <= K <= V = %d, got K = %d" vocab k)
    let logp = logits.log_softmax(-1L)                                       // [B; T; V]
    let struct (_, topIdx) = logits.detach().topk(k, dim = -1, largest = true, sorted = true) // [B; T; K]
    // One gather for y and c_1..c_K: its backward scatters into one dense [B; T; V] gradient
    // instead of two (the cost SimKO would otherwise add over GRPO at a large vocabulary).
    let gathered = logp.gather(-1L, torch.cat([| tokens.unsqueeze(-1L); topIdx |], -1L))   // [B; T; 1+K]
    let tokenLogp = gathered.select(-1L, 0L)                                   // [B; T]
    let topLogp = gathered.narrow(-1L, 1L, int64 k)                            // [B; T; K]
    let entropy =
        use _ = torch.no_grad()
        let lp = logp.detach()
        (lp.exp() * lp).sum(-1L).neg()                                         // [B; T]
    { LogProbs = tokenLogp; Entropy = entropy; TopKIndices = topIdx; TopKLogProbs = topLogp }

/// As `compute`, over chunks of at most `chunk` positions along T, so that temporaries of the
/// softmax are `B·chunk·V` instead of `B·T·V`. Same values and gradients as `compute`.
let computeChunked (chunk: int) (k: int) (logits: Tensor) (tokens: Tensor) : TokenStats =
    if chunk < 1 then invalidArg "chunk" (sprintf "chunk must be >= 1, got %d" chunk)
    let t = logits.shape[1]
    if t <= int64 chunk then compute k logits tokens
    else
        let parts =
            [| for start in 0L .. int64 chunk .. t - 1L ->
                 let len = min (int64 chunk) (t - start)
                 compute k (logits.narrow(1L, start, len)) (tokens.narrow(1L, start, len)) |]
        let cat (f: TokenStats -> Tensor) = torch.cat([| for p in parts -> f p |], 1L)
        { LogProbs = cat _.LogProbs; Entropy = cat _.Entropy
          TopKIndices = cat _.TopKIndices; TopKLogProbs = cat _.TopKLogProbs }

/// Λ, Λ^(1..K) and mean entropy over valid tokens (`mask [B; T]`, 1 = response token).
let lambdas (stats: TokenStats) (mask: Tensor) : Lambdas =
    use _ = torch.no_grad()
    let count = mask.sum()
    let k = int stats.TopKLogProbs.shape[2]
    { Lambda = value (maskedMean stats.LogProbs mask)
      TopK = [| for i in 0 .. k - 1 -> value (maskedMean (stats.TopKLogProbs.select(2L, int64 i)) mask) |]
      Entropy = value (maskedMean stats.Entropy mask)
      Tokens = value count }
