/// The benchmark's measurement helpers (the benchmarks themselves are commands, never tests).
module SimKO.Tests.BenchTests

open Expecto
open SimKO.Host.Diagnostics

let tests =
    testList "bench helpers" [
        testCase "/proc status lines parse whatever the padding (a large value leaves no space after the tab)" <| fun () ->
            Expect.equal (ProcessMemory.ParseKb "VmRSS:\t  123456 kB") (123456L * 1024L) "padded"
            Expect.equal (ProcessMemory.ParseKb "VmHWM:\t12345678 kB") (12345678L * 1024L) "tab only"
            Expect.equal (ProcessMemory.ParseKb "VmHWM:  42 kB") (42L * 1024L) "spaces only"
            Expect.throwsT<System.FormatException> (fun () -> ProcessMemory.ParseKb "VmHWM:" |> ignore) "no value"
        testCase "resident memory is read, and the peak after a reset is at least the current size" <| fun () ->
            ProcessMemory.ResetPeak() |> ignore
            let struct (rss, peak) = ProcessMemory.Read()
            Expect.isGreaterThan rss (1L <<< 20) "a .NET process with libtorch loaded uses more than 1 MiB"
            Expect.isGreaterThanOrEqual peak rss "peak ≥ current"
        testCase "every bench section the host runs is the one --help documents, in the same order" <| fun () ->
            let documented = SimKO.Cli.BenchArgs.sections |> List.map fst
            let runnable = SimKO.Host.Commands.BenchCommand.Sections |> Seq.map (fun struct (name, _) -> name) |> List.ofSeq
            Expect.sequenceEqual runnable documented "BenchCommand.Sections against BenchArgs.sections"
    ]
