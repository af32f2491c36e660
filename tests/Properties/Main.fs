/// The test console: runs every test of the solution and ends with the plain line
/// `N passed, N failed, N skipped` that CI reads.
module SimKO.Tests.Main

open Expecto
open Expecto.Impl

let all =
    testList "SimKO" [
        Smoke.tests
        testList "Math" [
            TokenStatsTests.tests
            AdvantagesTests.tests
            GatesTests.tests
            ShapingTests.tests
            MaskTests.tests
            ClippingTests.tests
            AggregationTests.tests
            ObjectiveTests.tests
            PassAtKTests.tests
            MethodsTests.tests
            MutationTests.tests
            KlPenaltyTests.tests
            RegularisersTests.tests
            ComposeExample.tests
            NewMethodExample.tests
            LmHeadTests.tests
            ObjectiveInputTests.tests
        ]
        testList "HostReporting" [
            LossCommandTests.tests
            GradeCommandTests.tests
            PlotTests.tests
            ReportTests.tests
            ReportTests.pairedTests
            AdamWTests.tests
            UpdateStepTests.tests
            TrainerTests.tests
            ModelTests.tests
            CheckpointTests.tests
            SafeTensorsTests.tests
            SamplerTests.tests
            EndToEndTests.tests
            CountdownTests.tests
            OrderingTests.tests
            WordProblemTests.tests
            DatasetFileTests.tests
            BenchTests.tests
            GradientCheckpointingTests.tests
            SafeTensorsLargeTests.tests
            HfFolderShardTests.tests
            MemoryPlanTests.tests
            MixedPrecisionTests.tests
            LoraTests.tests
            RunSpecTests.tests
        ]
        ServeTests.tests
        RolloutClientTests.tests
        HostileTests.tests
        TrainOnServerTests.tests
        CollectiveTests.tests
        ArchitectureTests.tests
        SimKO.Data.Tests.All.tests
        SimKO.Host.Tests.All.tests
    ]

[<EntryPoint>]
let main argv =
    let mutable counts = None
    let remember (summary: TestRunSummary) =
        let failed = summary.failed.Length + summary.errored.Length
        counts <- Some(summary.passed.Length, failed, summary.ignored.Length)
    let code = runTestsWithCLIArgs [ CLIArguments.No_Spinner; CLIArguments.Colours 0; CLIArguments.Append_Summary_Handler(SummaryHandler remember) ] argv all
    match counts with
    | Some (passed, failed, skipped) ->
        // Expecto's console logger ends its last line with a colour reset and pads the line after
        // it (through its own console writer); write the summary straight to the stdout stream.
        System.Console.Out.Flush()
        let line = sprintf "\n%d passed, %d failed, %d skipped\n" passed failed skipped
        use stdout = System.Console.OpenStandardOutput()
        let bytes = System.Text.Encoding.ASCII.GetBytes line
        stdout.Write(bytes, 0, bytes.Length)
        stdout.Flush()
    | None -> ()
    code
