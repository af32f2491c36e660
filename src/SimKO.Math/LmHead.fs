/// The LM head fused with the token statistics, in chunks of tokens (SPEC §3 "Cost", §7.12, §8).
/// From final hidden states `[B; T; d]` and the head weight `[V; d]` it gives the same
/// `TokenStats` as `TokenStats.compute` over the full logits `hidden · Wᵀ`, but no `[B·T; V]`
/// tensor ever exists whole: forward builds the logits of one chunk of tokens at a time, keeps only
/// the per-token outputs (log π(y), top-K indices and log-probs, entropy) and drops the chunk;
/// backward recomputes each chunk's logits and turns them straight into the chunk's share of
/// ∂/∂hidden and ∂/∂W. The idea is Liger-Kernel's fused linear cross-entropy and Apple's Cut
/// Cross-Entropy; SimKO needs the top-K log-probs with gradient as well, so the chunk's softmax is
/// recomputed in backward rather than kept.
///
/// Gradient of the outputs w.r.t. the logits z of one token (lp = log_softmax z, p = softmax z):
///   ∂ log p[y] / ∂z = e_y − p,   ∂ log p[c_k] / ∂z = e_{c_k} − p,
/// so with upstream gradients g_y and g_k:  ∂L/∂z = g_y·e_y + Σ_k g_k·e_{c_k} − (g_y + Σ_k g_k)·p,
/// then ∂L/∂h = ∂L/∂z · W and ∂L/∂W = Σ_tokens ∂L/∂zᵀ · h.
/// Entropy and the top-K indices carry no gradient (SPEC §1).
module SimKO.Math.LmHead

open System
open System.Collections.Generic
open TorchSharp
open SimKO.Math.Tensors
open SimKO.Math.TokenStats

/// dtype in which logits and their softmax are computed: float64 stays float64, everything else
/// (bfloat16, float16, float32) is computed in float32.
let accumulationType (t: Tensor) =
    if t.dtype = torch.ScalarType.Float64 then torch.ScalarType.Float64 else torch.ScalarType.Float32

/// Logits of one chunk `[c; V]` in the accumulation dtype (a fresh tensor the caller may overwrite).
let private chunkLogits (h: Tensor) (w: Tensor) =
    let z = h.matmul(w.t())
    if z.dtype = accumulationType h then z else z.to_type(accumulationType h)

/// The custom autograd function. Inputs: hidden [N; d], weight [V; d], tokens [N] int64, then
/// the settings (k, chunk) as plain objects. Outputs: log π(y) [N], top-K log-probs [N; K]
/// (both differentiable), top-K indices [N; K] and entropy [N] (non-differentiable).
type internal FusedHeadFunction() =
    inherit torch.autograd.MultiTensorFunction<FusedHeadFunction>()

    override _.Name = "SimKOFusedLmHead"

    override _.forward(ctx: torch.autograd.AutogradContext, [<ParamArray>] vars: obj[]) : List<Tensor> =
        let hidden = vars[0] :?> Tensor
        let weight = vars[1] :?> Tensor
        let tokens = vars[2] :?> Tensor
        let k = vars[3] :?> int
        let chunk = vars[4] :?> int64
        let n = hidden.shape[0]
        let parts = ResizeArray()
        for start in 0L .. chunk .. n - 1L do
            let len = min chunk (n - start)
            use scope = torch.NewDisposeScope()
            // two [c; V] buffers at most: the logits (turned into log-probs in place) and p·log p
            let z = chunkLogits (hidden.narrow(0L, start, len)) weight                 // [c; V]
            let struct (_, topIdx) = z.topk(k, dim = -1, largest = true, sorted = true)  // [c; K]
            let lse = z.logsumexp(-1L, keepdim = true)                                   // [c; 1]
            let lp = z.sub_(lse)                                                         // [c; V] log p, in place
            let tok = tokens.narrow(0L, start, len).unsqueeze(-1L)                       // [c; 1]
            let logp = lp.gather(-1L, tok).squeeze(-1L)                                  // [c]
            let topLogp = lp.gather(-1L, topIdx)                                         // [c; K]
            let entropy = lp.exp().mul_(lp).sum(-1L).neg()                               // [c]
            parts.Add [| for t in [| logp; topLogp; topIdx; entropy |] -> t.MoveToOuterDisposeScope() |]
        let cat i = if parts.Count = 1 then parts[0].[i] else torch.cat([| for p in parts -> p.[i] |], 0L)
        let logp, topLogp, topIdx, entropy = cat 0, cat 1, cat 2, cat 3
        ctx.save_for_backward(List [ hidden; weight; tokens; topIdx ])
        ctx.save_data("chunk", box chunk)
        // a frozen head (LoRA) needs no ∂W: neither its [V; d] accumulator nor the matmuls
        ctx.save_data("weightGrad", box weight.requires_grad)
        ctx.mark_non_differentiable(List [ topIdx; entropy ])
        List [ logp; topLogp; topIdx; entropy ]

    override _.backward(ctx: torch.autograd.AutogradContext, grads: List<Tensor>) : List<Tensor> =
        use _ = torch.no_grad()
        let saved = ctx.get_saved_variables()
        let hidden, weight, tokens, topIdx = saved[0], saved[1], saved[2], saved[3]
        let chunk = ctx.get_data("chunk") :?> int64
        let weightGrad = ctx.get_data("weightGrad") :?> bool
        let acc = accumulationType hidden
        let gLogp = grads[0].to_type(acc)                                                // [N]
        let gTop = grads[1].to_type(acc)                                                 // [N; K]
        let n = hidden.shape[0]
        let dHidden = torch.empty_like(hidden)                                           // [N; d]
        let dWeight = if weightGrad then torch.zeros(weight.shape, dtype = acc, device = weight.device) else null // [V; d]
        for start in 0L .. chunk .. n - 1L do
            let len = min chunk (n - start)
            use scope = torch.NewDisposeScope()
            let h = hidden.narrow(0L, start, len)                                        // [c; d]
            let gy = gLogp.narrow(0L, start, len)                                        // [c]
            let gk = gTop.narrow(0L, start, len)                                         // [c; K]
            // one [c; V] buffer: logits → p = exp(z − lse) → ∂L/∂z, all in place
            let z = chunkLogits h weight                                                 // [c; V]
            let lse = z.logsumexp(-1L, keepdim = true)                                   // [c; 1]
            let p = z.sub_(lse).exp_()                                                   // [c; V] softmax
            // ∂L/∂z = g_y·e_y + Σ_k g_k·e_{c_k} − (g_y + Σ_k g_k)·p
            let dz = p.mul_((gy + gk.sum(-1L)).neg().unsqueeze(-1L))                     // [c; V]
            dz.scatter_add_(-1L, tokens.narrow(0L, start, len).unsqueeze(-1L), gy.unsqueeze(-1L)) |> ignore
            dz.scatter_add_(-1L, topIdx.narrow(0L, start, len), gk) |> ignore
            dHidden.narrow(0L, start, len).copy_(dz.matmul(weight.to_type(acc)).to_type(hidden.dtype)) |> ignore
            if weightGrad then dWeight.addmm_(dz.t(), h.to_type(acc)) |> ignore          // += ∂zᵀ · h   [V; d]
        let dW = if not weightGrad then null elif dWeight.dtype = weight.dtype then dWeight else dWeight.to_type(weight.dtype)
        List [ dHidden; dW; null; null; null ]

/// Token statistics of the policy at `hidden [B; T; d]` (final, normed hidden states of the
/// positions that predict `tokens [B; T]`, int64, a valid id at every position) through the head
/// `weight [V; d]` (HF layout: lm_head.weight, or the embedding when tied), keeping `k` top
/// candidates, in chunks of at most `chunk` tokens. `chunk = 0`: the plain path (full logits, then
/// `TokenStats.compute`). Values and gradients w.r.t. hidden and weight equal the plain path's.
/// Tensors saved for backward are hidden, weight, tokens and the top-K indices: O(T·(d + K)).
let tokenStats (chunk: int) (k: int) (hidden: Tensor) (weight: Tensor) (tokens: Tensor) : TokenStats =
    requireShape "hidden" [| -1L; -1L; -1L |] hidden
    requireShape "head weight" [| -1L; hidden.shape[2] |] weight
    requireShape "tokens" [| hidden.shape[0]; hidden.shape[1] |] tokens
    let vocab = weight.shape[0]
    if k < 1 || int64 k > vocab then
        invalidArg "k" (sprintf "top-K needs 1 <= K <= V = %d, got K = %d" vocab k)
    if chunk < 0 then invalidArg "chunk" (sprintf "logits_chunk_tokens must be >= 0 (0 = unchunked), got %d" chunk)
    if not (sameDevice hidden weight && sameDevice hidden tokens) then
        invalidArg "hidden" (sprintf "hidden (%O), head weight (%O) and tokens (%O) must be on one device" hidden.device weight.device tokens.device)
    if chunk = 0 then
        TokenStats.compute k (hidden.matmul(weight.t()).to_type(accumulationType hidden)) tokens
    else
        let b, t, d = hidden.shape[0], hidden.shape[1], hidden.shape[2]
        let outs = FusedHeadFunction.apply(hidden.reshape(b * t, d), weight, tokens.reshape(b * t), box k, box (int64 chunk))
        { LogProbs = outs[0].view(b, t)                                                 // [B; T]
          TopKLogProbs = outs[1].view(b, t, int64 k)                                    // [B; T; K]
          TopKIndices = outs[2].view(b, t, int64 k)                                     // [B; T; K]
          Entropy = outs[3].view(b, t) }                                                // [B; T]
