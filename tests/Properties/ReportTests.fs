/// The pass@K report: numbers in the table are the unbiased estimates, averaged over benchmarks
/// and seeds as the header says.
module SimKO.Tests.ReportTests

open Expecto
open SimKO.Host.Reporting
open SimKO.Host.Evaluation

let private bench name (outcomes: (int * int * bool) list) =
    BenchmarkResult(name, outcomes |> List.mapi (fun i (n, c, maj) -> ProblemOutcome(string i, n, c, maj)) |> ResizeArray)

let tests =
    testList "pass@K report" [
        testCase "table cells are mean pass@k in percent with the seed spread" <| fun () ->
            // seed 1: problems (4 samples, 1 correct) and (4, 0): pass@1 = 0.125, pass@4 = 0.5
            // seed 2: (4, 2) and (4, 0): pass@1 = 0.25, pass@4 = 0.5
            let s1 = ResizeArray [ bench "toy" [ 4, 1, true; 4, 0, false ] ]
            let s2 = ResizeArray [ bench "toy" [ 4, 2, true; 4, 0, false ] ]
            let base' = ResizeArray [ bench "toy" [ 4, 4, true; 4, 0, false ] ]
            let rows = ResizeArray [ ReportRow("GRPO", ResizeArray [ s1 :> System.Collections.Generic.IReadOnlyList<_>; s2 ])
                                     ReportRow("Base", ResizeArray [ base' :> System.Collections.Generic.IReadOnlyList<_> ]) ]
            Expect.sequenceEqual (PassAtKReport.Ks rows) [| 1; 2; 4 |] "ks"
            let md = PassAtKReport.Markdown(rows, "toy")
            // GRPO pass@1 = mean(12.5, 25) = 18.75 ± 8.8; pass@4 = 50 ± 0; base pass@1 = 50
            Expect.stringContains md "| GRPO | 18.8 ± 8.8 |" "GRPO pass@1"
            Expect.stringContains md "| Base | **50.0** |" "base pass@1 is the best"
    ]

/// SimKO − GRPO paired by seed: per-seed differences, mean, 95 % Student-t interval.
let pairedTests =
    testList "paired seeds" [
        testCase "the interval of the mean difference equals R's t.test (d = 0.2, 0.3, 0.4: [0.0516, 0.5484])" <| fun () ->
            let d = PairedDifference.Of([| 0.3; 0.5; 0.7 |], [| 0.1; 0.2; 0.3 |])
            Expect.floatClose Accuracy.high d.Mean 0.3 "mean"
            Expect.floatClose { absolute = 1e-4; relative = 0.0 } d.Low.Value 0.05159 "low"
            Expect.floatClose { absolute = 1e-4; relative = 0.0 } d.High.Value 0.54841 "high"
            Expect.sequenceEqual (d.PerSeed |> Array.map (fun x -> System.Math.Round(x, 12))) [| 0.2; 0.3; 0.4 |] "a − b per seed"
            Expect.equal d.Sign 1 "above zero"
        testCase "pairing is by seed: a constant per-seed gain is a clear difference though each method's spread is wide" <| fun () ->
            let a, b = [| 0.9; 0.1; 0.5 |], [| 0.8; 0.0; 0.4 |]
            let d = PairedDifference.Of(a, b)
            Expect.floatClose Accuracy.high d.Low.Value 0.1 "zero-width interval at the gain"
            Expect.equal d.Sign 1 "clear"
            // unpaired (the seeds shuffled) the same values give an interval that includes zero
            let shuffled = PairedDifference.Of(a, [| 0.0; 0.8; 0.4 |])
            Expect.equal shuffled.Sign 0 "not clear once the pairing is broken"
        testCase "one seed has no interval and says so; two seeds say they are too few" <| fun () ->
            let one = PairedDifference.Of([| 0.5 |], [| 0.25 |])
            Expect.isNone (Option.ofNullable one.Low) "no interval"
            Expect.stringContains (one.Cell()) "one seed: no interval" "cell"
            Expect.stringContains ((one.ToJson()["note"]).GetValue<string>()) "fewer than 3" "results.json note"
            let two = PairedDifference.Of([| 0.5; 0.6 |], [| 0.25; 0.5 |])
            Expect.isSome (Option.ofNullable two.Low) "an interval"
            Expect.stringContains (PairedDifference.Markdown("SimKO", "GRPO", [ (1, two) ])) "Only 2 seeds" "the report says so"
        testCase "t quantiles: the table and the expansion beyond it agree with known values" <| fun () ->
            for df, t in [ 1, 12.7062; 2, 4.3027; 10, 2.2281; 30, 2.0423; 60, 2.0003; 120, 1.9799 ] do
                Expect.floatClose { absolute = 2e-4; relative = 0.0 } (PairedDifference.TQuantile975 df) t (sprintf "df %d" df)
            Expect.floatClose { absolute = 2e-4; relative = 0.0 } (PairedDifference.TQuantile975 31) 2.0395 "df 31: the expansion joins the table"
    ]

/// Which commit a report names: "+dirty" for changed code, not for the published results that
/// reproduce.sh (PUBLISH=1) writes into docs/results/ of the same checkout.
let provenanceTests =
    testList "provenance" [
        testCase "a checkout is dirty when tracked code changed, not when only docs/results did; from any subfolder" <| fun () ->
            let dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "simko-provenance-" + string (System.Guid.NewGuid()))
            let git (args: string) =
                let psi = System.Diagnostics.ProcessStartInfo("git", args, WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true)
                use p = System.Diagnostics.Process.Start psi
                let out = p.StandardOutput.ReadToEnd()
                p.StandardError.ReadToEnd() |> ignore
                p.WaitForExit()
                Expect.equal p.ExitCode 0 (sprintf "git %s" args)
                out.Trim()
            let write (rel: string) (text: string) =
                let path = System.IO.Path.Combine(dir, rel)
                System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName path) |> ignore
                System.IO.File.WriteAllText(path, text)
            try
                System.IO.Directory.CreateDirectory dir |> ignore
                git "init -q" |> ignore
                write "src/code.cs" "1"
                write "docs/results/countdown/report.md" "old"
                write "docs/guide.md" "text"
                git "add -A" |> ignore
                git "-c user.name=t -c user.email=t@t commit -q -m init" |> ignore
                let sha = git "rev-parse HEAD"
                let sub = System.IO.Path.Combine(dir, "src")
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read dir) sha "clean"
                write "docs/results/countdown/report.md" "new"
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read dir) sha "published results changed: still the commit's code"
                write "docs/guide.md" "edited"
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read dir) (sha + "+dirty") "any other tracked file changed"
                git "checkout -q docs/guide.md" |> ignore
                write "src/code.cs" "2"
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read dir) (sha + "+dirty") "code changed"
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read sub) (sha + "+dirty") "seen from a subfolder too"
                git "checkout -q src/code.cs" |> ignore
                write "docs/results/../guide.md" "edited again"
                Expect.equal (SimKO.Host.Diagnostics.Provenance.Read sub) (sha + "+dirty") "from a subfolder, a change outside it"
            finally
                try System.IO.Directory.Delete(dir, true) with _ -> ()
    ]
