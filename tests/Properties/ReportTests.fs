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
