/// The `simko loss` command: its float64 output agrees with the plain reference, and bad input is
/// reported by field.
module SimKO.Tests.LossCommandTests

open System.Text.Json.Nodes
open Expecto
open SimKO.Host.Commands
open SimKO.Tests.Checks

let private batchJson (settings: string) =
    sprintf """{"method":"simko","settings":%s,
      "logits":[[[0.5,1.5,-0.3,0.2],[2.0,0.1,0.0,-1.0]],[[0.3,0.3,0.9,-0.5],[1.1,-0.2,0.4,0.0]],
                [[-1.0,0.4,0.8,0.3],[0.0,0.0,2.5,0.1]],[[0.7,-0.7,0.2,1.4],[0.6,0.5,0.4,0.3]]],
      "tokens":[[1,0],[2,3],[2,2],[3,0]],
      "old_logprobs":[[-0.9,-0.5],[-1.0,-2.0],[-0.8,-0.4],[-0.7,-1.4]],
      "mask":[[1,1],[1,0],[1,1],[1,1]],
      "rewards":[1,0,0,1],"group_size":2}""" settings

let tests =
    testList "loss command" [
        testCase "output equals the plain float[] reference (SimKO, float64)" <| fun () ->
            let out = LossCommand.Evaluate(batchJson """{"alpha":0.2,"k":2,"lambda":1.5,"q":0.0}""")
            let root = JsonNode.Parse(batchJson "{}")
            let arr (n: JsonNode) = n.AsArray() |> Seq.map (fun x -> x.GetValue<float>()) |> Array.ofSeq
            let logits = root["logits"].AsArray() |> Seq.collect (fun r -> r.AsArray() |> Seq.collect arr) |> Array.ofSeq
            let flat (name: string) = root[name].AsArray() |> Seq.collect arr |> Array.ofSeq
            let adv = Reference.grpoAdvantages 2 (arr root["rewards"])
            let batch : Reference.Batch =
                { B = 4; T = 2; V = 4; Logits = logits; Tokens = flat "tokens" |> Array.map int
                  Old = flat "old_logprobs"; Mask = flat "mask"; Adv = adv }
            let rl, rg = Reference.lossAndGrad (Batches.referenceSettings 0.2 2 1.5 (Some 0.0)) batch
            allClose "loss" 1e-12 1e-10 [| rl |] [| out["loss"].GetValue<float>() |]
            let grad = out["grad_logits"].AsArray() |> Seq.collect (fun r -> r.AsArray() |> Seq.collect arr) |> Array.ofSeq
            allClose "grad_logits" 1e-12 1e-10 rg grad
            allClose "advantages" 1e-12 1e-10 adv (arr out["advantages"])
        testCase "bad settings are all reported at once" <| fun () ->
            Expect.throwsC (fun () -> LossCommand.Evaluate(batchJson """{"alpha":2.0,"k":0,"clip_low":-1}""") |> ignore)
                (fun e ->
                    for field in [ "alpha"; "k must"; "clip_low" ] do
                        Expect.stringContains e.Message field "names the field")
        testCase "a ragged logits array names the row and the expected length" <| fun () ->
            let json = (batchJson "{}").Replace("[0.3,0.3,0.9,-0.5]", "[0.3,0.3,0.9]")
            Expect.throwsC (fun () -> LossCommand.Evaluate json |> ignore)
                (fun e -> Expect.stringContains e.Message "logits[1][0] has 3 entries, expected 4" "names the row")
        testCase "a token outside the vocabulary is reported" <| fun () ->
            let json = (batchJson "{}").Replace("[[1,0],[2,3]", "[[1,0],[7,3]")
            Expect.throwsC (fun () -> LossCommand.Evaluate json |> ignore)
                (fun e -> Expect.stringContains e.Message "tokens[1][0] = 7" "names the token")
    ]
