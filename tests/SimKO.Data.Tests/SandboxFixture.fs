/// One sandbox pool shared by the sandbox, HumanEval and program-task tests (short limits so every test is
/// quick), and the skip when this machine cannot isolate programs.
module SimKO.Data.Tests.SandboxFixture

open System
open System.IO
open Expecto
open SimKO.Data.Sandbox

/// Test limits: 3 s wall, 2 s CPU, 256 MiB, 8 processes, 64 KiB of output, 8 MiB of /tmp; the workers,
/// isolation and interpreter given.
let settingsWith (workers: int) (isolation: Isolation) (python: string) =
    SandboxSettings(WallSeconds = 3.0, CpuSeconds = 2, MemoryMegabytes = 256, MaxProcesses = 8,
                    MaxOutputBytes = 65536L, TmpMegabytes = 8, Workers = workers, Isolation = isolation, Python = python)

/// The shared pool's settings: the test limits, two workers, Auto isolation, /usr/bin/python3.
let settings = settingsWith 2 Isolation.Auto "/usr/bin/python3"

let private shared =
    lazy (try Ok(new SandboxPool(settings)) with :? SandboxUnavailableException as e -> Error e.Message)

/// The shared pool, or a skip (with the reason) where isolation is not available on this machine.
let pool () : SandboxPool =
    match shared.Value with
    | Ok p -> p
    | Error why -> skiptest ("no sandbox isolation on this machine: " + why)

/// The repository root (the folder with SimKO.sln).
let repoRoot () =
    match SimKO.Data.Math.Datasets.FindRepoRoot AppContext.BaseDirectory with
    | null -> failwith "no SimKO.sln above the test program"
    | r -> r

/// A Python string literal of a path.
let py (s: string) = "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'"

/// Expect an outcome (the result printed on failure).
let expectOutcome (expected: Outcome) (r: GradeResult) (what: string) =
    Expect.equal r.Outcome expected (sprintf "%s: %s" what (r.Describe()))
