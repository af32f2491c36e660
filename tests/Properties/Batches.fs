/// Turning a generated batch into the library's inputs and the plain reference's inputs.
module SimKO.Tests.Batches

open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Math.Objective
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let policyBatch (b: Built) (logits: Tensor) : PolicyBatch =
    { Logits = logits
      Tokens = b.Tokens
      OldLogProbs = b.OldLogProbs
      RefLogProbs = None
      Mask = b.Mask
      Advantages = b.Advantages
      Context = Objective.selfContext b.Mask }

let reference (c: Case) (b: Built) : Reference.Batch =
    { B = c.B; T = c.T; V = c.V
      Logits = toArray b.Logits
      Tokens = b.Tokens.data<int64>().ToArray() |> Array.map int
      Old = toArray b.OldLogProbs
      Mask = toArray b.Mask
      Adv = toArray b.Advantages }

/// SimKO's objective with the given shaping and per-response gate q.
let simko alpha k lambda q =
    Methods.objective (Methods.Simko { Methods.simkoDefaults with Alpha = alpha; K = k; Lambda = lambda; Q = q })

/// SimKO's objective with generated settings (per-response or batch gate).
let simkoOf (s: SimkoCase) =
    Methods.objective (Methods.Simko { Methods.simkoDefaults with Alpha = s.Alpha; K = s.K; Lambda = s.Lambda; Q = s.Q; BatchGate = s.BatchGate })

/// The plain reference's settings for generated SimKO settings.
let referenceOf (s: SimkoCase) : Reference.Settings =
    { Alpha = s.Alpha; K = s.K; Lambda = s.Lambda; Q = Some s.Q; BatchGate = s.BatchGate; ClipLow = 0.2; ClipHigh = 0.2 }

let grpo = Methods.objective (Methods.Grpo { Common = Methods.commonDefaults })

/// Loss value and gradient w.r.t. the logits of an objective on a built batch.
let lossAndGrad (o: Objective) (b: Built) : float * Tensor =
    let leaf = b.Logits.detach().clone().requires_grad_(true)
    let out = loss o (policyBatch b leaf)
    out.Loss.backward()
    Tensors.value out.Loss, leaf.grad.detach().clone()

let referenceSettings alpha k lambda q : Reference.Settings =
    { Alpha = alpha; K = k; Lambda = lambda; Q = q; BatchGate = false; ClipLow = 0.2; ClipHigh = 0.2 }

/// Loss and gradient w.r.t. the logits of the batch cut into micro-batches at the row indices
/// `cuts` (ascending, inside 1..B−1), each evaluated with the whole batch's normaliser and the gate
/// threshold and KL-Cov statistics of `context` (as the trainer hands them down), the micro-batch losses summed.
let microBatchLossAndGrad (o: Objective) (b: Built) (cuts: int64 list) (context: MiniBatchContext) : float * Tensor =
    let leaf = b.Logits.detach().clone().requires_grad_(true)
    let rowsTotal = b.Mask.shape[0]
    let bounds = 0L :: cuts @ [ rowsTotal ]
    let total =
        bounds |> List.pairwise |> List.map (fun (start, stop) ->
            let rows (t: Tensor) = t.narrow(0L, start, stop - start)
            (loss o { Logits = rows leaf; Tokens = rows b.Tokens; OldLogProbs = rows b.OldLogProbs; RefLogProbs = None
                      Mask = rows b.Mask; Advantages = rows b.Advantages; Context = { context with Rows = Some [| start .. stop - 1L |] } }).Loss)
        |> List.reduce (+)
    total.backward()
    Tensors.value total, leaf.grad.detach().clone()

/// The batch-gate threshold of objective `o` over the whole built batch (None for other gates).
let batchThresholdOf (o: Objective) (b: Built) =
    let stats = TokenStats.compute 1 b.Logits b.Tokens
    Gates.batchThreshold o.Gate stats.Entropy b.Mask

/// The mini-batch context of the whole built batch (the trainer's statistics pass).
let contextOf (o: Objective) (b: Built) : MiniBatchContext =
    Objective.context o b.Mask b.Advantages b.OldLogProbs (Some (TokenStats.compute 1 b.Logits b.Tokens).Entropy)
