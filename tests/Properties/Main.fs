/// The test console: runs every test of the solution and ends with the plain line
/// `N passed, N failed, N skipped` that CI reads.
module SimKO.Tests.Main

open Expecto
open Expecto.Impl

/// Runs every test case of `t` inside its own dispose scope. A tensor or Scalar that a test passes
/// straight into a TorchSharp call (`(x * m).sum()`, `t.clamp_min(sc 1.0)`) is otherwise reachable
/// only through the native handle during the call, so a collection on another thread can finalize
/// it while libtorch still reads it: a run under load failed "Expected false to be true … Scalar.h
/// toDouble". The scope holds every tensor the test creates until the test ends, then frees them.
/// Scalars are not tracked by scopes: `sc`/`sci` keep theirs alive (SimKO.Math.Tensors), but
/// TorchSharp makes its own (the alpha of every add/sub) without keeping them alive, and two full runs
/// under load still failed once each in a Math property ("alpha must not be a floating point number").
/// Such a finalization needs a collection during the call, i.e. another thread allocating: the Math
/// properties, which make the most TorchSharp calls, therefore run sequenced (alone, ~6 s more).
let rec inDisposeScopes (t: Test) : Test =
    let scoped (f: unit -> 'a) = fun () -> (use _ = TorchSharp.torch.NewDisposeScope() in f ())
    match t with
    | TestCase (Sync f, s) -> TestCase (Sync (scoped f), s)
    | TestCase (SyncWithCancel f, s) -> TestCase (SyncWithCancel (fun ct -> scoped (fun () -> f ct) ()), s)
    | TestCase (AsyncFsCheck (c1, c2, f), s) ->
        // FsCheck checks a property synchronously on the thread that starts it
        TestCase (AsyncFsCheck (c1, c2, fun cfg -> async { return scoped (fun () -> Async.RunSynchronously (f cfg)) () }), s)
    | TestCase (Async _, _) -> t
    | TestList (ts, s) -> TestList (List.map inDisposeScopes ts, s)
    | TestLabel (label, inner, s) -> TestLabel (label, inDisposeScopes inner, s)
    | Test.Sequenced (k, inner) -> Test.Sequenced (k, inDisposeScopes inner)

let all =
    testList "SimKO" [
        Smoke.tests
        inDisposeScopes <| testSequenced (testList "Math" [
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
        ])
        testList "HostReporting" [
            LossCommandTests.tests
            GradeCommandTests.tests
            PlotTests.tests
            ReportTests.tests
            ReportTests.pairedTests
            ReportTests.provenanceTests
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
            OptimizerShardTests.tests
            LoraTests.tests
            GgufTests.tests
            RunSpecTests.tests
        ]
        ServeTests.tests
        RolloutClientTests.tests
        HostileTests.tests
        ChatMarkupTests.tests
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
