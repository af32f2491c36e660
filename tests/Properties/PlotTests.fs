/// PNG charts: files are real PNGs of the chart's size, and bad input is refused by name.
module SimKO.Tests.PlotTests

open System.IO
open Expecto
open SimKO.Host.Reporting

let private pngSize (path: string) =
    let b = File.ReadAllBytes path
    let signature = [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |]
    Expect.sequenceEqual b.[0..7] signature "PNG signature"
    let be (i: int) = (int b.[i] <<< 24) ||| (int b.[i + 1] <<< 16) ||| (int b.[i + 2] <<< 8) ||| int b.[i + 3]
    be 16, be 20

let tests =
    testList "plots" [
        testCase "a pass@K line chart is a 900x560 PNG" <| fun () ->
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-plot-%d.png" System.Environment.ProcessId)
            let ks = [ 1.0; 2.0; 4.0; 8.0; 16.0; 32.0; 64.0 ]
            Plot.Lines(path, "pass@K", "K", "pass@K",
                       [ Series("base", ks, [ 0.1; 0.2; 0.35; 0.5; 0.7; 0.85; 0.96 ])
                         Series("GRPO", ks, [ 0.23; 0.3; 0.4; 0.47; 0.54; 0.6; 0.65 ], [ 0.01; 0.01; 0.02; 0.02; 0.03; 0.03; 0.03 ]) ], logX = true)
            Expect.equal (pngSize path) (900, 560) "size"
            File.Delete path
        testCase "a histogram chart is a PNG" <| fun () ->
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-hist-%d.png" System.Environment.ProcessId)
            Plot.Histograms(path, "token entropy", "entropy (nats)", [ "a", [| 0.1; 0.2; 0.2; 1.5 |]; "b", [| 0.0; 0.05; 2.0 |] ])
            Expect.equal (pngSize path) (900, 560) "size"
            File.Delete path
        testCase "a chart with no data is refused, naming it" <| fun () ->
            Expect.throwsC (fun () -> Plot.Lines("/tmp/never.png", "empty chart", "x", "y", [ Series("none", [], []) ]))
                (fun e -> Expect.stringContains e.Message "empty chart" "names the chart")
    ]
