/// The README's "add a named method" example, compiled and run as a test: one `MethodDef` value,
/// and `train --help`, `reproduce --methods`, `reproduce --help` and `loss` know it. The lines
/// between the markers appear verbatim in README.md (a test checks that).
module SimKO.Tests.NewMethodExample

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Tests.Generators
open SimKO.Tests.Checks

// begin-readme-method
/// Gated GRPO: GRPO's policy gradient on the highest-entropy tokens of each response only
/// (SimKO's entropy gate without its smoothing and push).
type GatedGrpoSettings = { Q: float }

let gatedGrpo : Methods.MethodDef<GatedGrpoSettings> =
    { Name = "gated-grpo"
      Label = "Gated GRPO"
      Doc = "GRPO on the top (1 - q) entropy tokens of each response (SimKO's gate alone)"
      Defaults = { Q = 0.8 }
      CommonDefaults = Methods.commonDefaults
      Settings = [ Settings.number "q" "entropy quantile of the per-response gate" "SimKO paper 0.8" (fun s -> s.Q) (fun q _ -> { Q = q }) ]
      Validate = fun s -> [ if not (s.Q >= 0.0 && s.Q < 1.0) then sprintf "q must be in [0, 1), got %g" s.Q ]
      Objective = fun common s ->
        { Methods.grpo.Objective common Methods.NoSettings with
            Gate = Gates.ResponseQuantile s.Q
            Selection = Objective.OnlyGated } }

/// The shipped list with it (or add `define gatedGrpo` to `Methods.all` in src/SimKO.Math/Methods.fs).
let methods = Methods.all @ [ Methods.define gatedGrpo ]
// end-readme-method

let private batchJson =
    """{"method":"gated-grpo","settings":{"q":0.5},
      "logits":[[[0.5,1.5,-0.3,0.2],[2.0,0.1,0.0,-1.0]],[[0.3,0.3,0.9,-0.5],[1.1,-0.2,0.4,0.0]],
                [[-1.0,0.4,0.8,0.3],[0.0,0.0,2.5,0.1]],[[0.7,-0.7,0.2,1.4],[0.6,0.5,0.4,0.3]]],
      "tokens":[[1,0],[2,3],[2,2],[3,0]],
      "old_logprobs":[[-0.9,-0.5],[-1.0,-2.0],[-0.8,-0.4],[-0.7,-1.4]],
      "mask":[[1,1],[1,0],[1,1],[1,1]],
      "rewards":[1,0,0,1],"group_size":2}"""


let private exitText argv =
    match SimKO.Cli.Commands.parseWith methods argv with
    | SimKO.Cli.Commands.Exit (text, code) -> text, code
    | SimKO.Cli.Commands.Run c -> failtestf "expected help, got %A" c

let tests =
    testList "README new method" [
        testCase "train --help lists the new method with its setting, default and source" <| fun () ->
            let text, code = exitText [| "train"; "--help" |]
            Expect.equal code 0 "help exits 0"
            Expect.stringContains text "gated-grpo" "method listed"
            Expect.stringContains text "GRPO on the top (1 - q) entropy tokens" "its doc"
            Expect.stringContains text "method.q" "its setting"
            Expect.stringContains text "SimKO paper 0.8" "the setting's source"
            // and the shipped program, without it, does not list it
            match SimKO.Cli.Commands.parse [| "train"; "--help" |] with
            | SimKO.Cli.Commands.Exit (shipped, _) -> Expect.isFalse (shipped.Contains "gated-grpo") "not in the shipped list"
            | other -> failtestf "%A" other
        testCase "reproduce --methods trains it and reproduce --help lists it" <| fun () ->
            match SimKO.Cli.Commands.parseWith methods [| "reproduce"; "--quick"; "--methods"; "grpo"; "gated-grpo" |] with
            | SimKO.Cli.Commands.Run (SimKO.Cli.Commands.Command.Reproduce spec) ->
                Expect.equal (spec.Variants |> List.map _.Key) [ "grpo"; "gated-grpo" ] "variants"
                Expect.equal (spec.Variants |> List.map _.Label) [ "GRPO"; "Gated GRPO" ] "labels"
                Expect.equal (Methods.ownOf gatedGrpo spec.Variants[1].Method) (Some { Q = 0.8 }) "its defaults"
            | other -> failtestf "%A" other
            let text, _ = exitText [| "reproduce"; "--help" |]
            Expect.stringContains text "gated-grpo" "reproduce --help lists it"
            match SimKO.Cli.Commands.parse [| "reproduce"; "--methods"; "gated-grpo" |] with
            | SimKO.Cli.Commands.Exit (e, 2) -> Expect.stringContains e "unknown method 'gated-grpo'" "the shipped list does not know it"
            | other -> failtestf "%A" other
        testCase "train resolves it with --set method.q, and validate reports a bad q" <| fun () ->
            match SimKO.Cli.Commands.parseWith methods [| "train"; "--set"; "method=gated-grpo"; "--set"; "method.q=0.5" |] with
            | SimKO.Cli.Commands.Run (SimKO.Cli.Commands.Command.Train (spec, _)) ->
                Expect.equal (Methods.ownOf gatedGrpo spec.Method) (Some { Q = 0.5 }) "q set"
                Expect.equal (Methods.objective spec.Method).Gate (Gates.ResponseQuantile 0.5) "its objective"
            | other -> failtestf "%A" other
            match SimKO.Cli.Commands.parseWith methods [| "train"; "--set"; "method=gated-grpo"; "--set"; "method.q=1.5" |] with
            | SimKO.Cli.Commands.Exit (e, 2) -> Expect.stringContains e "q must be in [0, 1), got 1.5" "its validate"
            | other -> failtestf "%A" other
        testCase "loss computes it: finite loss, gradient only at gated tokens" <| fun () ->
            let out = SimKO.Host.Commands.LossCommand.Evaluate(batchJson, methods)
            Expect.equal ((out["method"]).GetValue<string>()) "gated-grpo" "method"
            Expect.isTrue (System.Double.IsFinite((out["loss"]).GetValue<float>())) "finite loss"
            let gated = (out["metrics"]["gated_fraction"]).GetValue<float>()
            Expect.isGreaterThan gated 0.0 "some tokens gated"
            Expect.isLessThan gated 1.0 "not every token"
        testCase "its gradient is GRPO's on gated tokens and zero elsewhere" <| fun () ->
            use _ = torch.NewDisposeScope()
            let c = { Groups = 2; G = 4; T = 6; V = 9; Scale = 1.0; OffPolicy = 0.05; Seed = 5L }
            let b = build c
            let _, g = Batches.lossAndGrad (Methods.objective (Methods.make gatedGrpo { Q = 0.5 })) b
            let _, gGrpo = Batches.lossAndGrad (Methods.objective (Methods.define Methods.grpo)) b
            let g, gGrpo = toArray g, toArray gGrpo
            let rows = [ for j in 0 .. c.Groups * c.G * c.T - 1 -> g.[j * c.V .. (j + 1) * c.V - 1], gGrpo.[j * c.V .. (j + 1) * c.V - 1] ]
            let zero = rows |> List.filter (fun (r, _) -> Array.forall ((=) 0.0) r)
            Expect.isNonEmpty zero "ungated tokens get no gradient"
            for r, rg in rows do
                if not (Array.forall ((=) 0.0) r) then allClose "gated token: GRPO's gradient" 1e-10 1e-8 rg r
        testCase "README.md shows the example verbatim" <| fun () ->
            match Checks.readme () with
            | None -> failtest "README.md not found above the test binary"
            | Some (root, text) ->
                let source = System.IO.File.ReadAllText(System.IO.Path.Combine(root, "tests", "Properties", "NewMethodExample.fs"))
                let start = source.IndexOf("// begin-readme-method\n") + "// begin-readme-method\n".Length
                let snippet = source.Substring(start, source.IndexOf("// end-readme-method") - start)
                Expect.stringContains text snippet "README contains the example"
    ]
