/// The README's "compose a new variant" example, compiled and run as a test. The lines between
/// the markers appear verbatim in README.md (a test checks that).
module SimKO.Tests.ComposeExample

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Tests.Generators
open SimKO.Tests.Checks

// begin-readme
/// SimKO with K = 5 candidates and one entropy threshold for the whole batch
/// (the top 20 % highest-entropy tokens of the mini-batch) instead of one per response.
let simkoK5BatchGate : Objective.Objective =
    { Methods.objective (Methods.make Methods.simko { Methods.simkoDefaults with K = 5 }) with
        Gate = Gates.BatchQuantile 0.8 }

/// Its loss on one micro-batch: logits [B; T; V], tokens/old log-probs/mask [B; T], advantages [B].
let lossOf (batch: Objective.PolicyBatch) : torch.Tensor =
    (Objective.loss simkoK5BatchGate batch).Loss
// end-readme


let tests =
    testList "README example" [
        testCase "the composed variant smooths over 5 candidates with a batch gate and trains" <| fun () ->
            use _ = torch.NewDisposeScope()
            match simkoK5BatchGate.Shaping with
            | Objective.Simko s -> Expect.equal s.K 5 "K"
            | other -> failtestf "shaping %A" other
            Expect.equal simkoK5BatchGate.Gate (Gates.BatchQuantile 0.8) "gate"
            let b = build { Groups = 2; G = 4; T = 6; V = 9; Scale = 1.0; OffPolicy = 0.05; Seed = 5L }
            let leaf = b.Logits.detach().clone().requires_grad_(true)
            let l = lossOf (Batches.policyBatch b leaf)
            l.backward()
            Expect.isTrue (System.Double.IsFinite(Tensors.value l)) "finite loss"
            let _, gDefault = Batches.lossAndGrad (Methods.objective (Methods.define Methods.simko)) b
            Expect.isGreaterThan (Tensors.value ((leaf.grad - gDefault).abs().max())) 1e-6 "differs from default SimKO"
        testCase "README.md shows the example verbatim" <| fun () ->
            match Checks.readme () with
            | None -> failtest "README.md not found above the test binary"
            | Some (root, readme) ->
                let source = System.IO.File.ReadAllText(System.IO.Path.Combine(root, "tests", "Properties", "ComposeExample.fs"))
                let start = source.IndexOf("// begin-readme\n") + "// begin-readme\n".Length
                let snippet = source.Substring(start, source.IndexOf("// end-readme") - start)
                Expect.stringContains readme snippet "README contains the example"
    ]
