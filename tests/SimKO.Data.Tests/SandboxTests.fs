/// The code sandbox: verdicts of ordinary programs, validated limits, and hostile programs that are each
/// contained (graded failed within their limits, the host unchanged, the next program still graded).
module SimKO.Data.Tests.SandboxTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open Expecto
open SimKO.Data.Sandbox
open SimKO.Data.Tests.SandboxFixture

let private passing = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n"

/// After a hostile program, every worker still grades an ordinary program as passed.
let private stillGrades (pool: SandboxPool) =
    let rs = pool.GradeMany(Array.create (2 * pool.Settings.WorkerCount) passing)
    Expect.all rs (fun r -> r.Passed) (sprintf "ordinary programs after a hostile one: %A" (rs |> Array.map (fun r -> r.Describe())))

/// Grades one hostile program, checks it finished within the wall limit (plus start-up slack), and that
/// the pool still grades.
let private contained (program: string) =
    let pool = pool ()
    let sw = Stopwatch.StartNew()
    let r = pool.Grade program
    Expect.isLessThan sw.Elapsed.TotalSeconds (settings.WallSeconds + 5.0) "finished within its wall limit"
    Expect.isFalse r.Passed (sprintf "graded not passed: %s" (r.Describe()))
    stillGrades pool
    r

let private tempName (prefix: string) = prefix + Guid.NewGuid().ToString("N")

let tests =
    testList "sandbox" [
        testCase "an ordinary program passes; a failing one reports the exception type and message" <| fun () ->
            let p = pool ()
            let rs = p.GradeMany [| passing; "assert 1 + 1 == 3, 'one plus one'"; "raise KeyError('k')"; "def f(:\n  pass"; "import sys\nsys.exit(0)" |]
            expectOutcome Outcome.Passed rs.[0] "passing"
            Expect.equal (rs.[1].Describe()) "failed: AssertionError: one plus one" "assertion"
            Expect.equal (rs.[2].ExceptionType, rs.[2].Message) ("KeyError", "'k'") "key error"
            Expect.equal rs.[3].ExceptionType "SyntaxError" "syntax error"
            Expect.equal (rs.[4].Describe()) "failed: SystemExit: 0" "sys.exit(0) before the tests fails, as in HumanEval"
            Expect.isTrue p.PidNamespace "each worker is alone in a pid namespace of its own"
            Expect.notEqual p.Isolation Isolation.None "Auto never means no isolation"

        testCase "a program that exits early without raising is failed, not passed" <| fun () ->
            let r = (pool ()).Grade "import os\nos._exit(0)\nassert False"
            Expect.equal (r.Outcome, r.ExceptionType) (Outcome.Failed, "Exit") (r.Describe())

        testCase "the environment is clean: only PATH, HOME, TMPDIR and LANG; HOME is the program's own empty folder" <| fun () ->
            let r =
                (pool ()).Grade(
                    "import os\n" +
                    "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'TMPDIR'], sorted(os.environ)\n" +
                    "assert os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR'], (os.environ['HOME'], os.getcwd())\n" +
                    "assert os.listdir('.') == [], os.listdir('.')\n" +
                    "assert os.listdir('/') and not os.path.exists('/home') and not os.path.exists('/root') and not os.path.exists('/proc/1'), os.listdir('/')\n")
            expectOutcome Outcome.Passed r "environment"

        testCase "one program cannot affect the next: files, folders and processes it leaves are gone (only the worker and itself are visible)" <| fun () ->
            pool () |> ignore  // skips where there is no isolation
            use one = new SandboxPool(settingsWith 1 Isolation.Auto "/usr/bin/python3")
            let first =
                "import os, subprocess\n" +
                "open('left.txt', 'w').write('x')\nopen('/tmp/left.txt', 'w').write('x')\nos.mkdir('/tmp/dir')\n" +
                "if os.fork() == 0:\n    import time\n    time.sleep(30)\n    os._exit(0)\n"
            let second =
                "import os\n" +
                "alive = []\nfor pid in range(1, 5000):\n    try:\n        os.kill(pid, 0)\n        alive.append(pid)\n    except ProcessLookupError:\n        pass\n" +
                "assert set(alive) <= {1, os.getppid(), os.getpid()}, alive\n" +
                "assert os.listdir('/tmp') == [os.path.basename(os.getcwd())], os.listdir('/tmp')\n" +
                "assert os.listdir('.') == []\n"
            expectOutcome Outcome.Passed (one.Grade first) "leaves files and a sleeping child"
            expectOutcome Outcome.Passed (one.Grade second) "sees none of it"
            Expect.equal one.Restarts 0 "the same worker graded both"

        testCase "settings are validated: every bad field named with its range, all at once" <| fun () ->
            let bad = SandboxSettings(WallSeconds = 0.0, CpuSeconds = 0, MemoryMegabytes = 8, MaxProcesses = -1,
                                      MaxOutputBytes = 10L, TmpMegabytes = 0, Workers = -2, Python = "python3")
            let problems = bad.Validate()
            Expect.hasLength problems 8 (String.Join("\n", problems))
            for field, range in [ "wall_seconds", "(0, 3600]"; "cpu_seconds", "1..3600"; "memory_megabytes", "64..65536"
                                  "max_processes", "0..4096"; "max_output_bytes", "1024..1073741824"; "tmp_megabytes", "1..4096"
                                  "workers", "0 (one per core)..256"; "python", "absolute path" ] do
                Expect.exists problems (fun p -> p.Contains("sandbox." + field) && p.Contains range) (sprintf "%s %s" field range)
            Expect.isEmpty (SandboxSettings.Defaults.Validate()) "the defaults are valid"
            let message = try new SandboxPool(bad) |> ignore; "no error" with :? ArgumentException as e -> e.Message
            Expect.stringContains message "sandbox.wall_seconds must be in (0, 3600], got 0" message

        testCase "a sandbox that cannot start is a clear error that says how to opt out" <| fun () ->
            let message =
                try new SandboxPool(settingsWith 1 Isolation.Auto "/usr/bin/no-such-python") |> ignore; "started"
                with :? SandboxUnavailableException as e -> e.Message
            Expect.stringContains message "did not start" message
            Expect.stringContains message "--unsafe-no-sandbox" message

        testCase "without isolation (only when asked) the limits still hold and the host temporary folder is removed" <| fun () ->
            let unsafeSettings = settingsWith 1 Isolation.None "/usr/bin/python3"
            let readme = Path.Combine(repoRoot (), "README.md")
            let folder, timedOut, readHost =
                use p = new SandboxPool(unsafeSettings)
                let r = p.Grade "import os\nopen('f.txt', 'w').write('x')\nassert False, os.path.dirname(os.getcwd())"
                // the negative control of the containment tests: unisolated, the same read of the repository succeeds
                r.Message, (p.Grade "while True: pass").Outcome, p.Grade(sprintf "assert open(%s).read(1) == '#'" (py readme))
            Expect.stringStarts folder (Path.GetTempPath().TrimEnd('/')) "ran in a host temporary folder"
            Expect.isFalse (Directory.Exists folder) (sprintf "%s removed" folder)
            Expect.equal timedOut Outcome.TimedOut "CPU limit"
            expectOutcome Outcome.Passed readHost "unisolated, a program reads the repository (what the sandbox prevents)"

        testCase "a cold sandbox (one program, started for it alone) passes and fails like the pool" <| fun () ->
            pool () |> ignore
            expectOutcome Outcome.Passed (CodeSandbox.RunOnce(passing, settings)) "cold passing"
            expectOutcome Outcome.Failed (CodeSandbox.RunOnce("assert False", settings)) "cold failing"

        testList "hostile programs are contained" [
            testCase "writing a file outside the sandbox: the host's /tmp, the repository and /usr are untouched" <| fun () ->
                let hostTmp = Path.Combine(Path.GetTempPath(), tempName "simko-escape-")
                let inRepo = Path.Combine(repoRoot (), tempName "escape-")
                let r =
                    contained (
                        sprintf "open(%s, 'w').write('x')\n" (py hostTmp) +     // lands in the sandbox's own /tmp
                        "import os\nfor p in [" + py inRepo + ", '/usr/escape.txt', '/escape.txt', '/etc/escape.txt', '/dev/escape']:\n" +
                        "    try:\n        open(p, 'w').write('x')\n        raise AssertionError('wrote ' + p)\n" +
                        "    except OSError:\n        pass\n" +
                        "raise PermissionError('nothing written outside')\n")
                Expect.equal (r.ExceptionType, r.Message) ("PermissionError", "nothing written outside") (r.Describe())
                Expect.isFalse (File.Exists hostTmp) hostTmp
                Expect.isFalse (File.Exists inRepo) inRepo
                Expect.isFalse (File.Exists "/usr/escape.txt") "/usr"
                Expect.isFalse (File.Exists "/escape.txt") "/"

            testCase "reading the repository's files, the host's /etc or home fails" <| fun () ->
                let readme = Path.Combine(repoRoot (), "README.md")
                Expect.isTrue (File.Exists readme) "the README is there on the host"
                let r = contained (sprintf "print(open(%s).read()[:100])" (py readme))
                Expect.equal r.ExceptionType "FileNotFoundError" (r.Describe())
                let r2 = contained "import os\nfor p in ['/etc/passwd', '/root', '/home', '/work', '/proc/self/environ']:\n    assert not os.path.exists(p), p\nraise FileNotFoundError('none visible')"
                Expect.equal (r2.ExceptionType, r2.Message) ("FileNotFoundError", "none visible") (r2.Describe())

            testCase "connecting to a socket the test listens on (loopback): no network, no connection arrives" <| fun () ->
                let listener = new TcpListener(IPAddress.Loopback, 0)
                listener.Start()
                try
                    let port = (listener.LocalEndpoint :?> IPEndPoint).Port
                    let r = contained (sprintf "import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=1)\ns.sendall(b'escaped')" port)
                    Expect.equal r.ExceptionType "OSError" (r.Describe())
                    Expect.stringContains r.Message "Network is unreachable" (r.Describe())
                    Threading.Thread.Sleep 200
                    Expect.isFalse (listener.Pending()) "no connection arrived"
                finally listener.Stop()

            testCase "a fork bomb is bounded by the process limit and its tree is killed at the wall limit" <| fun () ->
                let counted =
                    contained (
                        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        n += 1\n" +
                        "except OSError:\n    pass\nraise AssertionError(str(n))\n")
                Expect.equal counted.ExceptionType "AssertionError" (counted.Describe())
                Expect.isLessThanOrEqual (int counted.Message) settings.MaxProcesses (sprintf "%s processes started" counted.Message)
                Expect.isGreaterThanOrEqual (int counted.Message) (settings.MaxProcesses - 1) (sprintf "%s processes started: the limit is the settings' (give or take the sandbox's own)" counted.Message)
                let bomb = contained "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
                expectOutcome Outcome.TimedOut bomb "the classic bomb"

            testCase "allocating far past the memory limit is 'memory exceeded'" <| fun () ->
                expectOutcome Outcome.MemoryExceeded (contained "x = bytearray(10 ** 10)") "one big block"
                // growing 1 MB at a time to the limit: a pool of its own with 64 MiB and ample time, so that the
                // memory limit, not the clock, stops it even on a loaded machine (zeroing pages is slow there)
                use small = new SandboxPool(SandboxSettings(WallSeconds = 20.0, CpuSeconds = 20, MemoryMegabytes = 64, Workers = 1))
                let r = small.Grade "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 6))"
                expectOutcome Outcome.MemoryExceeded r "growing"
                expectOutcome Outcome.Passed (small.Grade "assert len(bytearray(10 ** 7)) == 10 ** 7") "10 MB still fits afterwards"

            testCase "an infinite loop is timed out (CPU), and so is a sleep (wall clock)" <| fun () ->
                let loop = contained "while True:\n    pass"
                expectOutcome Outcome.TimedOut loop "loop"
                let sleep = contained "import time\ntime.sleep(60)"
                expectOutcome Outcome.TimedOut sleep "sleep"
                Expect.isLessThan sleep.Seconds (settings.WallSeconds + 1.0) "killed at the wall limit"

            testCase "printing gigabytes is 'output too large', stopped at the output limit" <| fun () ->
                expectOutcome Outcome.OutputTooLarge (contained "import sys\nwhile True:\n    sys.stdout.write('x' * 10 ** 6)") "stdout"
                expectOutcome Outcome.OutputTooLarge (contained "import sys\nfor _ in range(10 ** 4):\n    sys.stderr.write('y' * 10 ** 6)") "stderr"

            testCase "killing its parent (and every process it can see) leaves the worker and the pool running" <| fun () ->
                let p = pool ()
                let r = contained "import os\nfor pid in (os.getppid(), 1, -1):\n    try:\n        os.kill(pid, 9)\n    except OSError:\n        pass\nraise AssertionError('still running')"
                Expect.equal (r.ExceptionType, r.Message) ("AssertionError", "still running") (r.Describe())
                Expect.equal p.Restarts 0 "no worker had to be replaced"

            testCase "changing the working directory and deleting files fails; the host's files are intact" <| fun () ->
                let readme = Path.Combine(repoRoot (), "README.md")
                let r =
                    contained (
                        "import os, shutil\nos.chdir('/')\n" +
                        "for p in ['/usr/bin/python3', " + py readme + "]:\n" +
                        "    try:\n        os.remove(p)\n    except OSError:\n        pass\n" +
                        "shutil.rmtree('/usr')\n")
                Expect.equal r.ExceptionType "OSError" (r.Describe())
                Expect.stringContains r.Message "Read-only file system" (r.Describe())
                Expect.isTrue (File.Exists "/usr/bin/python3") "python intact"
                Expect.isTrue (File.Exists readme) "README intact"
        ]
    ]
