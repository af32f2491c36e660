/// SPEC §8 "one device, checked": every tensor the loss sees has the policy's device and dtype;
/// the loss names the offending input and what was expected.
module SimKO.Tests.ObjectiveInputTests

open System
open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Tests.Generators

let private case = { Groups = 1; G = 2; T = 3; V = 5; Scale = 1.0; OffPolicy = 0.1; Seed = 3L }

let private throwsNaming (what: string) (expected: string) (b: Objective.PolicyBatch) =
    Expect.throwsC (fun () -> Objective.loss Batches.grpo b |> ignore) (fun e ->
        Expect.stringContains e.Message what "names the input"
        Expect.stringContains e.Message expected "says what was expected")

let tests =
    testList "objective input checks" [
        testCase "advantages of another dtype than the logits are named" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build case
            throwsNaming "'advantages'" "Float64" { Batches.policyBatch b b.Logits with Advantages = b.Advantages.to_type(torch.ScalarType.Float32) }
        testCase "old log-probs of another dtype are named" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build case
            throwsNaming "'old_logprobs'" "Float64" { Batches.policyBatch b b.Logits with OldLogProbs = b.OldLogProbs.to_type(torch.ScalarType.Float32) }
        testCase "tokens that are not int64 are named" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build case
            throwsNaming "'tokens'" "Int64" { Batches.policyBatch b b.Logits with Tokens = b.Tokens.to_type(torch.ScalarType.Int32) }
        testCase "a mask on another device is named (meta device stands in for a GPU)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build case
            throwsNaming "'mask'" "policy's device" { Batches.policyBatch b b.Logits with Mask = b.Mask.``to``(torch.META) }
        testCase "consistent inputs pass the check" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build case
            Objective.loss Batches.grpo (Batches.policyBatch b b.Logits) |> ignore
    ]
