/// The named methods: defaults are valid, validation reports every bad field at once, names and
/// overrides are checked in one place.
module SimKO.Tests.MethodsTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Methods
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

let tests =
    testList "Methods" [
        testCase "every named method's defaults are valid for groups of 8" <| fun () ->
            for m in all do
                Expect.isEmpty (validate 8 m) m.Name
        testCase "validate reports every bad field at once" <| fun () ->
            let bad = { make Methods.simko { simkoDefaults with Alpha = 1.5; K = 0; Q = -0.1 } with Common = { commonDefaults with Clip = { Low = 0.0; High = -1.0; Dual = Some 0.5 } } }
            let problems = validate 8 bad
            for field in [ "alpha"; "k must"; "quantile q"; "clip_low"; "clip_high"; "dual_clip" ] do
                Expect.exists problems (fun p -> p.Contains field) (sprintf "a problem naming %s in %A" field problems)
        testCase "an unknown method name lists the valid ones" <| fun () ->
            match byName "grpoo" with
            | Error e -> Expect.stringContains e "simko" "lists valid names"
            | Ok _ -> failtest "accepted an unknown name"
        testCase "settings by name set typed fields and report every unknown or ill-typed key, saying what is wrong" <| fun () ->
            match SimKO.Cli.MethodSettings.apply [ "alpha", "0.1"; "k", "5"; "clip_high", "0.28"; "gate", "batch" ] (define Methods.simko) with
            | Ok m when (ownOf Methods.simko m).IsSome ->
                let s = (ownOf Methods.simko m).Value
                Expect.equal (s.Alpha, s.K, m.Common.Clip.High, s.BatchGate) (0.1, 5, 0.28, true) "set"
            | other -> failtestf "unexpected %A" other
            match SimKO.Cli.MethodSettings.apply [ "lambda_w", "0.2"; "k", "2.5"; "aggregation", "token-sum"; "alpha", "abc"; "lambda", "" ] (define Methods.simko) with
            | Error errors ->
                Expect.equal errors.Length 5 (sprintf "five problems in %A" errors)
                for fragment in [ "setting 'lambda_w' does not apply to method 'simko'"; "setting 'k' of method 'simko': 2.5 is not an integer"
                                  "setting 'aggregation' of method 'simko': 'token-sum' is not one of token-mean"
                                  "setting 'alpha' of method 'simko': 'abc' is not a number"; "setting 'lambda' of method 'simko': '' is not a number" ] do
                    Expect.exists errors (fun e -> e.Contains fragment) (sprintf "'%s' in %A" fragment errors)
            | Ok _ -> failtest "accepted bad settings"
        testCase "every numeric setting of every method answers a non-number with 'is not a number'" <| fun () ->
            for m in all do
                for s in SimKO.Cli.MethodSettings.settingsOf m do
                    match SimKO.Cli.MethodSettings.set s.Name "abc" m with
                    | Ok _ -> failtestf "%s.%s accepted 'abc'" (name m) s.Name
                    | Error e ->
                        let expected =
                            if List.contains s.Name [ "kl_estimator"; "aggregation"; "gate" ] then "'abc' is not one of"
                            else "'abc' is not a number"
                        Expect.stringContains e expected (sprintf "%s.%s" (name m) s.Name)
                        Expect.stringContains e (sprintf "setting '%s' of method '%s'" s.Name (name m)) "names the setting and the method"
        testCase "every setting's shown value reads back to the same method (configs round-trip)" <| fun () ->
            for m in all do
                match SimKO.Cli.MethodSettings.apply (SimKO.Cli.MethodSettings.values m) m with
                | Ok back -> Expect.equal back m (sprintf "%s round-trips" (name m))
                | Error e -> failtestf "%s: %A" (name m) e
        testPropertyWithConfig (config 20) "every named method gives a finite loss and gradient" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            for m in all do
                let name = m.Name
                let m = if m.Name = passK.Name then make passK { K = 2 } else m
                let l, g = lossAndGrad (objective m) b
                Expect.isTrue (System.Double.IsFinite l) (sprintf "%s loss %g" name l)
                Expect.isTrue (toArray g |> Array.forall System.Double.IsFinite) (sprintf "%s gradient finite" name))
        testPropertyWithConfig (config 40) "forking trains only on the top 20 % entropy tokens of the batch (plain quantile reference)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let o = objective (define forking)
            let _, g = lossAndGrad o b
            let rb = reference c b
            // the reference gate: plain sort + linear interpolation over all valid entropies
            let w = Reference.gates { referenceSettings 0.0 1 1.0 (Some 0.8) with BatchGate = true } rb
            let grad = toArray g
            for j in 0 .. w.Length - 1 do
                let row = grad.[j * c.V .. (j + 1) * c.V - 1]
                if not w.[j] then
                    Expect.equal (row |> Array.map abs |> Array.max) 0.0 (sprintf "no gradient outside the gate (token %d)" j)
            // inside the gate: GRPO's gradient, from the plain reference restricted to gated tokens
            let grpoRef = Reference.tokenLossAndGrad rb (fun j logp ->
                if w.[j] then Reference.clippedTerm rb.Adv.[j / c.T] rb.Old.[j] logp else 0.0, 0.0)
            allClose "gradient on gated tokens" 1e-10 1e-8 (snd grpoRef) grad)
    ]
