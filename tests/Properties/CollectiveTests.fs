/// The collectives of issue 21: the one-process backend, the NCCL binding's error where libnccl is
/// absent, and — under `mpirun --allow-run-as-root --oversubscribe -np 2`, one torch thread per rank —
/// MPI's all-reduce, reduce-scatter, all-gather and broadcast against their formulas, and a hung or
/// killed rank stopping the other within the timeout with an error naming the rank (and the step).
/// Without mpirun the multi-process tests are skipped, naming the install command.
module SimKO.Tests.CollectiveTests

open System
open System.Diagnostics
open System.IO
open Expecto
open TorchSharp
open SimKO.Cli
open SimKO.Host.Collective

/// mpirun on PATH, or None.
let mpirun =
    (Environment.GetEnvironmentVariable "PATH" |> string).Split(':', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun d -> Path.Combine(d, "mpirun"))
    |> Array.tryFind File.Exists

let installHint = "mpirun is not installed: apt-get install -y openmpi-bin (.ci/run does this on CI)"

/// The simko executable beside the tests (simko.dll, run with dotnet).
let simkoDll = Path.Combine(AppContext.BaseDirectory, "simko.dll")

type Launch = { Code: int; Output: string; Seconds: float }

/// `mpirun -np <ranks> dotnet simko.dll <args>` with one torch thread per rank; killed after <limitS>.
let launch (ranks: int) (args: string list) (limitS: float) : Launch =
    match mpirun with
    | None -> skiptest installHint; Unchecked.defaultof<_>
    | Some exe ->
        let psi = ProcessStartInfo(exe, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in [ "--allow-run-as-root"; "--oversubscribe"; "-np"; string ranks; "-x"; "OMP_NUM_THREADS=1"; "dotnet"; simkoDll ] @ args do psi.ArgumentList.Add a
        psi.Environment["OMP_NUM_THREADS"] <- "1"
        let clock = Stopwatch.StartNew()
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()
        if not (p.WaitForExit(int (limitS * 1000.0))) then
            p.Kill true
            failtestf "mpirun %s did not finish within %g s" (String.concat " " args) limitS
        { Code = p.ExitCode; Output = out.Result + err.Result; Seconds = clock.Elapsed.TotalSeconds }

let tests =
    testList "collective" [
        testCase "the one-process collective is the identity" <| fun () ->
            use c = new SingleProcess()
            let x = torch.arange(6L, dtype = torch.ScalarType.Float32)
            c.AllReduce(x, ReduceOp.Mean)
            Expect.sequenceEqual (x.data<float32>().ToArray()) [| 0.f; 1.f; 2.f; 3.f; 4.f; 5.f |] "all-reduce of one rank"
            Expect.sequenceEqual (c.AllGather(x).data<float32>().ToArray()) (x.data<float32>().ToArray()) "all-gather of one rank"
            Expect.throws (fun () -> c.AllReduce(torch.zeros(2L, 3L))) "a 2-D tensor is refused"
        testCase "auto outside mpirun is one process" <| fun () ->
            if LaunchEnvironment.Launched then skiptest "this test console runs under a launcher"
            use c = Collectives.Open(SimKO.Math.AutoCollective, torch.CPU, 600.0)
            Expect.equal c.Backend "none" "auto without mpirun/srun"
        testCase "collective=nccl without libnccl says what is missing and how to install it" <| fun () ->
            let ok, why = NcclBackend.Available()
            if ok then skiptest "libnccl.so.2 is present here (the NCCL path is exercised on CUDA machines)"
            let e = Expect.throwsC (fun () -> Collectives.Open(SimKO.Math.NcclCollective, torch.CPU, 600.0) |> ignore) id
            Expect.stringContains e.Message "libnccl.so.2" "names the library"
            Expect.stringContains e.Message "collective=mpi" "says what to use instead"
            Expect.equal e.Message why "the same message as the availability check"
        testSequenced <| testList "under mpirun -np 2" [
            testCase "all-reduce, reduce-scatter, all-gather and broadcast equal their formulas" <| fun () ->
                let r = launch 2 [ "collective-check" ] 120.0
                Expect.equal r.Code 0 (sprintf "collective-check failed:\n%s" r.Output)
                for rank in 0 .. 1 do
                    Expect.stringContains r.Output (sprintf "rank %d/2: all-reduce, reduce-scatter, all-gather, broadcast, barrier ok" rank) "every rank checked"
            testCase "a hung rank makes the other stop within the timeout, naming the rank and the step" <| fun () ->
                let r = launch 2 [ "collective-check"; "--timeout"; "3"; "--hang-rank"; "1"; "--step"; "7" ] 90.0
                Expect.notEqual r.Code 0 "the job failed"
                Expect.stringContains r.Output "rank 1 did not answer" (sprintf "names the hung rank:\n%s" r.Output)
                Expect.stringContains r.Output "at step 7" "names the step"
            testCase "a killed rank stops the job, naming the rank" <| fun () ->
                let r = launch 2 [ "collective-check"; "--timeout"; "5"; "--die-rank"; "1" ] 90.0
                Expect.notEqual r.Code 0 "the job failed"
                Expect.stringContains r.Output "rank 1" (sprintf "names the dead rank:\n%s" r.Output)
                Expect.isLessThan r.Seconds 60.0 "it stopped instead of hanging"
        ]
    ]
