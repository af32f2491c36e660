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
      Normaliser = Aggregation.selfNormaliser b.Mask }

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

let grpo = Methods.objective (Methods.Grpo { Common = Methods.commonDefaults })

/// Loss value and gradient w.r.t. the logits of an objective on a built batch.
let lossAndGrad (o: Objective) (b: Built) : float * Tensor =
    let leaf = b.Logits.detach().clone().requires_grad_(true)
    let out = loss o (policyBatch b leaf)
    out.Loss.backward()
    Tensors.value out.Loss, leaf.grad.detach().clone()

let referenceSettings alpha k lambda q : Reference.Settings =
    { Alpha = alpha; K = k; Lambda = lambda; Q = q; ClipLow = 0.2; ClipHigh = 0.2 }
