/// The named methods: defaults are valid, validation reports every bad field at once, names and
/// overrides are checked in one place.
module SimKO.Tests.MethodTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Methods
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

let tests =
    testList "methods" [
        testCase "every named method's defaults are valid for groups of 8" <| fun () ->
            for name, m in all do
                Expect.isEmpty (validate 8 m) name
        testCase "validate reports every bad field at once" <| fun () ->
            let bad = Simko { simkoDefaults with Alpha = 1.5; K = 0; Q = -0.1; Common = { commonDefaults with Clip = { Low = 0.0; High = -1.0; Dual = Some 0.5 } } }
            let problems = validate 8 bad
            for field in [ "alpha"; "k must"; "quantile q"; "clip_low"; "clip_high"; "dual_clip" ] do
                Expect.exists problems (fun p -> p.Contains field) (sprintf "a problem naming %s in %A" field problems)
        testCase "an unknown method name lists the valid ones" <| fun () ->
            match byName "grpoo" with
            | Error e -> Expect.stringContains e "simko" "lists valid names"
            | Ok _ -> failtest "accepted an unknown name"
        testCase "overrides set fields and report every unknown or ill-typed key" <| fun () ->
            match withOverrides [ "alpha", Number 0.1; "k", Number 5.0; "clip_high", Number 0.28 ] (Simko simkoDefaults) with
            | Ok (Simko s) ->
                Expect.equal (s.Alpha, s.K, s.Common.Clip.High) (0.1, 5, 0.28) "overridden"
            | other -> failtestf "unexpected %A" other
            match withOverrides [ "lambda_w", Number 0.2; "k", Number 2.5; "aggregation", Text "token-sum" ] (Simko simkoDefaults) with
            | Error errors -> Expect.equal errors.Length 3 (sprintf "three problems in %A" errors)
            | Ok _ -> failtest "accepted bad overrides"
        testPropertyWithConfig (config 20) "every named method gives a finite loss and gradient" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            for name, m in all do
                let m = match m with PassK s -> PassK { s with K = 2 } | m -> m
                let l, g = lossAndGrad (objective m) b
                Expect.isTrue (System.Double.IsFinite l) (sprintf "%s loss %g" name l)
                Expect.isTrue (toArray g |> Array.forall System.Double.IsFinite) (sprintf "%s gradient finite" name))
        testCase "forking trains only on gated tokens" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build { Groups = 2; G = 2; T = 6; V = 7; Scale = 1.0; OffPolicy = 0.05; Seed = 3L }
            let o = objective (Forking { Common = commonDefaults; Q = 0.8 })
            let _, g = lossAndGrad o b
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            let w = Gates.gate (Gates.BatchQuantile 0.8) stats.Entropy b.Mask
            let outside = (1.0 - w).unsqueeze(-1L)
            Expect.equal (Tensors.value ((g * outside).abs().max())) 0.0 "no gradient outside the gate"
            Expect.isGreaterThan (Tensors.value (g.abs().max())) 0.0 "some gradient inside"
    ]
