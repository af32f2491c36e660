/// End to end: the trainer as a child process killed (kill -9) at random moments and resumed equals
/// an uninterrupted run; `reproduce` writes a report whose files exist and parse.
module SimKO.Tests.EndToEndTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open Microsoft.Extensions.Logging.Abstractions

let private exe = Path.Combine(AppContext.BaseDirectory, "simko")

let private temp name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-e2e-%s-%d" name Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    d

let private trainArgs (methodArgs: string list) (out: string) =
    [ "train"; "--resume" ] @ methodArgs @
    [ "--set"; "steps=8"; "--set"; "prompts_per_step=4"
      "--set"; "samples_per_prompt=4"; "--set"; "checkpoint_every=1"; "--set"; "keep_checkpoints=2"
      "--set"; "tensorboard=false"; "--set"; "seed=3"; "--set"; sprintf "out=%s" out ]

/// A trainer child process and the lines it has written (stdout and stderr).
let private start (args: string list) =
    let psi = ProcessStartInfo(exe, args, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    let p = Process.Start psi
    let lines = System.Collections.Concurrent.ConcurrentQueue<string>()
    p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lines.Enqueue e.Data)
    p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lines.Enqueue e.Data)
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p, lines

let private runToEnd (args: string list) =
    let p, lines = start args
    use p = p
    if not (p.WaitForExit 120_000) then
        p.Kill true
        failtest "trainer did not finish in 120 s"
    p.WaitForExit()                                     // drains the output readers
    Expect.equal p.ExitCode 0 (sprintf "exit code of simko %s" (String.concat " " args))
    List.ofSeq lines

/// The step a run resumed from, from its log line "resumed from … (step N)".
let private resumedSteps (lines: string seq) =
    lines |> Seq.choose (fun l ->
        let m = Text.RegularExpressions.Regex.Match(l, @"resumed from .*\(step (\d+)\)")
        if m.Success then Some(int m.Groups.[1].Value) else None) |> List.ofSeq

let private finalModel (out: string) =
    File.ReadAllBytes(Path.Combine(out, "checkpoints", "step-00000008", "model.safetensors"))

let private sharedDir () =
    SimKO.Data.Math.Datasets.FindRepoRoot(AppContext.BaseDirectory)
    |> Option.ofObj
    |> Option.map (fun root -> Path.GetFullPath(Path.Combine(root, "..", "shared")))
    |> Option.filter Directory.Exists

/// A tiny random Qwen2 model with the real Qwen3 tokenizer, as an HF folder.
let private tinyQwenFolder (shared: string) =
    let dir = temp "qwen-tiny"
    let tok = SimKO.Data.Tokenizers.HfBpeTokenizer.FromFolder(Path.Combine(shared, "fixtures", "qwen3-tokenizer"))
    let cfg = SimKO.Host.Model.ModelConfig.Tiny(tok.VocabSize, 32, 1, 2, 1, 64, 1024)
    use m = new SimKO.Host.Model.CausalLM(cfg)
    m.InitWeights(5L)
    SimKO.Host.Checkpoints.HfFolder.Save(m, tok, dir)
    dir

/// A command line parsed the way `simko` parses it; fails the test on a usage error.
let private parsed (argv: string[]) =
    match SimKO.Cli.Commands.parse argv with
    | SimKO.Cli.Commands.Parsed.Run c -> c
    | SimKO.Cli.Commands.Parsed.Exit (message, code) -> failtestf "%s: exit %d: %s" (String.concat " " argv) code message

let tests =
    testSequenced <| testList "end to end" [
        testCase "train and eval run on a math preset with an HF folder and a BPE tokenizer (the GPU path, tiny)" <| fun () ->
            match sharedDir () with
            | None -> skiptest "../shared (datasets and the Qwen3 tokenizer fixture) is not beside the repository"
            | Some shared ->
                let model = tinyQwenFolder shared
                let out = temp "preset-train"
                let train =
                    parsed [| "train"; "--set"; "task=gsm8k"; "--set"; sprintf "model=%s" model; "--set"; "method=grpo"; "--set"; "steps=1"
                              "--set"; "prompts_per_step=2"; "--set"; "samples_per_prompt=2"; "--set"; "max_new_tokens=4"; "--set"; "tensorboard=false"
                              "--set"; sprintf "out=%s" out |]
                match train with
                | SimKO.Cli.Commands.Command.Train (spec, resume) ->
                    Expect.equal (SimKO.Host.Commands.TrainCommand.Run(spec, resume, NullLogger.Instance)) 0 "train exit code"
                | other -> failtestf "parsed as %A" other
                Expect.isTrue (File.Exists(Path.Combine(out, "final", "tokenizer.json"))) "exported with its tokenizer"
                SimKO.Host.Checkpoints.CheckpointStore.Verify(Path.Combine(out, "checkpoints", "step-00000001"))
                let evalOut = temp "preset-eval"
                match parsed [| "eval"; "--model"; Path.Combine(out, "final"); "--task"; "math500"; "--task"; "aime24"; "--task"; "bbh/web_of_lies"
                                "--task"; "bbh/navigate"; "--n"; "2"; "--temperature"; "0.6"; "--max-new-tokens"; "4"; "--problems"; "2"; "--seed"; "1"; "--out"; evalOut |] with
                | SimKO.Cli.Commands.Command.Eval spec -> Expect.equal (SimKO.Host.Commands.EvalCommand.Run(spec, NullLogger.Instance)) 0 "eval exit code"
                | other -> failtestf "parsed as %A" other
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalOut, "eval.json")))
                let perTask = doc.RootElement.GetProperty("temperatures").GetProperty("0.6")
                Expect.equal (perTask.GetProperty("math500").GetProperty("problems").GetInt32()) 2 "math500 evaluated"
                Expect.equal (perTask.GetProperty("bbh/web_of_lies").GetProperty("problems").GetInt32()) 2 "a BBH task evaluated"
                let md = File.ReadAllText(Path.Combine(evalOut, "eval.md"))
                Expect.stringContains md "**Average**" "averaged over benchmarks"
                Expect.stringContains md "**bbh/navigate**" "BBH per task"
                Expect.stringContains md "BBH: unweighted mean over its tasks" "BBH averaged on its own"
        testCase "eval --data evaluates a file whose question spans fields and whose answers are numbers, under its own name" <| fun () ->
            match sharedDir () with
            | None -> skiptest "../shared (the Qwen3 tokenizer fixture) is not beside the repository"
            | Some shared ->
                let model = tinyQwenFolder shared
                let data = Path.Combine(temp "svamp", "svamp.jsonl")
                Directory.CreateDirectory(Path.GetDirectoryName data) |> ignore
                File.WriteAllLines(data, [ """{"Body": "Ann has 3 pens.", "Question": "How many pens does Ann have?", "Answer": 3.0}"""
                                           """{"Body": "Bo has 2 cats and buys 5 more.", "Question": "How many cats?", "Answer": 7}"""
                                           """{"Body": "A box holds 145 nails.", "Question": "How many nails?", "Answer": 145.0}""" ])
                let evalOut = temp "svamp-eval"
                match parsed [| "eval"; "--model"; model; "--data"; data; "--question-template"; "{Body} {Question}"; "--answer-field"; "Answer"
                                "--name"; "svamp"; "--n"; "2"; "--max-new-tokens"; "3"; "--out"; evalOut |] with
                | SimKO.Cli.Commands.Command.Eval spec -> Expect.equal (SimKO.Host.Commands.EvalCommand.Run(spec, NullLogger.Instance)) 0 "eval exit code"
                | other -> failtestf "parsed as %A" other
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalOut, "eval.json")))
                let svamp = doc.RootElement.GetProperty("temperatures").GetProperty("0.6").GetProperty("svamp")
                Expect.equal (svamp.GetProperty("problems").GetInt32()) 3 "every row evaluated under the benchmark's name"
        testCase "a verl Parquet file trains two steps with reward_fn (extras as reward/<key> metrics) and evaluates with it; its JSONL twin gives the same prompts; reward_errors=fail stops the run naming the file and line" <| fun () ->
            match sharedDir (), SimKO.Data.Sandbox.CodeSandbox.Unavailable() with
            | None, _ -> skiptest "../shared (the Qwen3 tokenizer fixture) is not beside the repository"
            | _, why when not (isNull why) -> skiptestf "no sandbox isolation here: %s" why
            | Some shared, _ ->
                let model = tinyQwenFolder shared
                let dir = temp "verl-reward"
                Directory.CreateDirectory dir |> ignore
                let parquet = Path.Combine(dir, "train.parquet")
                Parquet.Serialization.ParquetSerializer.SerializeAsync(SimKO.Data.Tests.VerlFormatTests.rows, parquet).GetAwaiter().GetResult() |> ignore
                let jsonl = Path.Combine(dir, "train.jsonl")
                File.WriteAllLines(jsonl, SimKO.Data.Tests.VerlFormatTests.rows |> List.map SimKO.Data.Tests.VerlFormatTests.jsonl)
                let good = Path.Combine(dir, "good.py")
                File.WriteAllText(good, "def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                                        + "    return {\"score\": float(ground_truth in solution_str), \"index\": float(extra_info[\"index\"]), \"source_ok\": float(data_source == \"openai/gsm8k\")}\n")
                let raising = Path.Combine(dir, "raising.py")
                File.WriteAllText(raising, "def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n    x = 1\n    raise ValueError(\"no answer in \" + data_source)\n")
                // the same prompts from the Parquet file and its JSONL twin, through the model's chat template
                let tok = SimKO.Host.Checkpoints.HfFolder.LoadTokenizer model
                let prompts (path: string) =
                    let file : SimKO.Cli.RunSpec.DataFile =
                        { Path = path; Question = SimKO.Cli.RunSpec.QuestionFields [ "problem"; "question" ]; AnswerField = "answer"
                          AnswerFrom = SimKO.Cli.RunSpec.AnswerField; Name = None; Format = SimKO.Cli.RunSpec.AutoFormat }
                    let t = SimKO.Host.Runs.TaskBinding.File(file, tok, SimKO.Cli.RunSpec.Chat, 4, false, chat = (fun () -> SimKO.Data.Chat.ChatTemplate.FromFolder model))
                    t.Train |> Seq.map (fun p -> tok.Decode p.PromptIds) |> List.ofSeq
                let fromParquet = prompts parquet
                Expect.equal fromParquet (prompts jsonl) "the same prompts"
                Expect.equal fromParquet.[0] "<|im_start|>system\nYou are careful.<|im_end|>\n<|im_start|>user\nWhat is 2+3? Let's think step by step and output the final answer after \"####\".<|im_end|>\n<|im_start|>assistant\n" "the messages through Qwen3's template"
                let trainWith (reward: string) (extra: string list) out =
                    let args =
                        [ "train"; "--set"; sprintf "data_path=%s" parquet; "--set"; sprintf "model=%s" model; "--set"; "method=grpo"; "--set"; "steps=2"
                          "--set"; "prompts_per_step=2"; "--set"; "samples_per_prompt=2"; "--set"; "max_new_tokens=4"; "--set"; "tensorboard=false"
                          "--set"; sprintf "reward_fn=%s" reward; "--set"; sprintf "out=%s" out ] @ extra
                    match parsed (Array.ofList args) with
                    | SimKO.Cli.Commands.Command.Train (spec, resume) ->
                        let err = new StringWriter()
                        let old = Console.Error
                        Console.SetError err
                        try SimKO.Host.Commands.TrainCommand.Run(spec, resume, NullLogger.Instance), err.ToString()
                        finally Console.SetError old
                    | other -> failtestf "parsed as %A" other
                let out = temp "verl-reward-train"
                let code, err = trainWith good [] out
                Expect.equal code 0 (sprintf "train exit code (%s)" err)
                let steps = File.ReadAllLines(Path.Combine(out, "metrics.jsonl")) |> Array.map JsonDocument.Parse
                Expect.equal steps.Length 2 "two steps"
                for s in steps do
                    let m (k: string) = s.RootElement.GetProperty(k).GetDouble()
                    Expect.equal (m "reward/source_ok") 1.0 "data_source reached the function"
                    Expect.isTrue (m "reward/index" >= 7.0 && m "reward/index" <= 8.0) "extra_info.index reached the function (rows 7 and 8)"
                    Expect.equal (m "reward/errors") 0.0 "no errors"
                let evalOut = temp "verl-reward-eval"
                match parsed [| "eval"; "--model"; Path.Combine(out, "final"); "--data"; parquet; "--reward-fn"; good; "--n"; "2"; "--max-new-tokens"; "3"; "--out"; evalOut |] with
                | SimKO.Cli.Commands.Command.Eval spec -> Expect.equal (SimKO.Host.Commands.EvalCommand.Run(spec, NullLogger.Instance)) 0 "eval exit code"
                | other -> failtestf "parsed as %A" other
                // eval.json carries the function's extras over every sample of each benchmark and temperature
                use evalJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalOut, "eval.json")))
                let benchmarks = [ for temp in evalJson.RootElement.GetProperty("temperatures").EnumerateObject() do
                                     for b in temp.Value.EnumerateObject() -> b.Value ]
                Expect.isNonEmpty benchmarks "eval.json has benchmarks"
                for b in benchmarks do
                    let rm (k: string) = b.GetProperty("reward_metrics").GetProperty(k).GetDouble()
                    Expect.equal (rm "reward/source_ok") 1.0 "eval: data_source reached the function"
                    Expect.floatClose Accuracy.veryHigh (rm "reward/index") 7.5 "eval: extra_info.index reached the function, the mean over both rows' samples (7 and 8)"
                    Expect.equal (rm "reward/errors") 0.0 "eval: no errors"
                let code2, err2 = trainWith raising [ "--set"; "reward_errors=fail" ] (temp "verl-reward-fail")
                Expect.equal code2 1 "reward_errors=fail stops the run"
                Expect.stringContains err2 (sprintf "%s:3: raise ValueError" raising) "names the file and the traceback's line"
                Expect.stringContains err2 "ValueError: no answer in openai/gsm8k" "and the error"
                Expect.stringContains err2 "sample 0 (data_source 'openai/gsm8k'" "and the sample"
        testCase "train on the program task rewards answers by running them in the sandbox" <| fun () ->
            let out = temp "program-train"
            match parsed [| "train"; "--set"; "task=program"; "--set"; "steps=2"; "--set"; "prompts_per_step=2"; "--set"; "samples_per_prompt=4"
                            "--set"; "tensorboard=false"; "--set"; sprintf "out=%s" out |] with
            | SimKO.Cli.Commands.Command.Train (spec, resume) ->
                Expect.equal spec.Task (SimKO.Cli.RunSpec.Builtin SimKO.Cli.RunSpec.Program) "task"
                Expect.equal (SimKO.Host.Commands.TrainCommand.Run(spec, resume, NullLogger.Instance)) 0 "train exit code"
            | other -> failtestf "parsed as %A" other
            let lines = File.ReadAllLines(Path.Combine(out, "metrics.jsonl"))
            Expect.equal lines.Length 2 "two steps"
            for l in lines do
                use d = JsonDocument.Parse l
                let r = d.RootElement.GetProperty("reward_mean").GetDouble()
                Expect.isTrue (r >= 0.0 && r <= 1.0) "a reward in [0, 1]"
        testCase "bad train settings are all reported at once" <| fun () ->
            let bad : SimKO.Cli.TrainArgs.TrainOptions =
                { Config = None; Resume = false; Sets = [ "steps=0"; "lr=-1"; "nonsense=1"; "temperature=hot"; "method.alpha=abc" ] }
            match SimKO.Cli.TrainArgs.resolve bad with
            | Ok _ -> failtest "accepted bad settings"
            | Error problems ->
                for fragment in [ "steps must be >= 1"; "lr must be > 0"; "unknown setting 'nonsense'"; "temperature: 'hot' is not a number"
                                  "setting 'alpha' of method 'simko': 'abc' is not a number" ] do
                    Expect.exists problems (fun p -> p.Contains fragment) (sprintf "reports %s in %A" fragment problems)
        for name, methodArgs in [ "nsr", [ "--set"; "method=nsr" ]
                                  "simko", [ "--set"; "method=simko"; "--set"; "method.alpha=0.1"; "--set"; "method.q=0.5" ] ] do
            testCase (sprintf "%s: a trainer killed at random moments and resumed mid-run ends equal to an uninterrupted run" name) <| fun () ->
                Expect.isTrue (File.Exists exe) (sprintf "the simko executable next to the tests (%s)" exe)
                let whole = temp (name + "-whole")
                runToEnd (trainArgs methodArgs whole) |> ignore
                let killed = temp (name + "-killed")
                let store = SimKO.Host.Checkpoints.CheckpointStore(Path.Combine(killed, "checkpoints"))
                let rng = Random(11)
                let mutable kills = 0
                let logs = ResizeArray<string>()
                let kill (p: Process) (lines: string seq) =
                    if not p.HasExited then
                        p.Kill()                        // SIGKILL: no chance to clean up
                        kills <- kills + 1
                    p.WaitForExit()
                    logs.AddRange lines
                // first a kill as soon as the first checkpoint is complete, so the next run must
                // resume strictly between the first and the last step; then kills at random moments
                let p, lines = start (trainArgs methodArgs killed)
                let clock = Stopwatch.StartNew()
                while not p.HasExited && isNull (let struct (path, _) = store.LatestIntact() in path) && clock.ElapsedMilliseconds < 120_000L do
                    Threading.Thread.Sleep 20
                kill p lines
                p.Dispose()
                for _ in 1 .. 3 do
                    let p, lines = start (trainArgs methodArgs killed)
                    if not (p.WaitForExit(800 + rng.Next(2500))) then kill p lines
                    else logs.AddRange lines
                    p.Dispose()
                logs.AddRange(runToEnd (trainArgs methodArgs killed))
                Expect.isGreaterThan kills 0 "at least one run was killed mid-way"
                let resumed = resumedSteps logs
                Expect.exists resumed (fun s -> s > 0 && s < 8) (sprintf "a run resumed from a checkpoint strictly between step 0 and step 8 (resumed from %A)" resumed)
                Expect.isTrue (finalModel whole = finalModel killed) "final model bytes equal the uninterrupted run's"
                SimKO.Host.Checkpoints.CheckpointStore.Verify(Path.Combine(killed, "checkpoints", "step-00000008"))
        testCase "reproduce --ablation and --sweep write their tables and plots" <| fun () ->
            let small = [ "--seeds"; "1"; "--steps"; "2"; "--base-steps"; "10"; "--eval-samples"; "2"; "--eval-problems"; "4" ]
            let run (args: string list) =
                match parsed (Array.ofList ("reproduce" :: args @ small)) with
                | SimKO.Cli.Commands.Command.Reproduce spec -> SimKO.Host.Commands.ReproduceCommand.Run(spec, NullLogger.Instance)
                | other -> failtestf "parsed as %A" other
            let ablation = temp "ablation"
            Expect.equal (run [ "--ablation"; "--out"; ablation ]) 0 "ablation exit code"
            let report = File.ReadAllText(Path.Combine(ablation, "report.md"))
            Expect.stringContains report "Ablation (Table 3 layout): pass@1 and pass@2" "the ablation table"
            for row in [ "| SimKO |"; "| w/o top-K smoothing (α = 0) |"; "| w/o top-1 push (λ = 1) |"; "| w/o entropy gate (all tokens) |"; "| GRPO |" ] do
                Expect.stringContains report row "one row per variant"
            use config = JsonDocument.Parse(File.ReadAllText(Path.Combine(ablation, "config.json")))
            let alpha = config.RootElement.GetProperty("variants").GetProperty("simko-no-smoothing").GetProperty("method_settings").GetProperty("alpha").GetDouble()
            Expect.equal alpha 0.0 "the α = 0 run's full settings are recorded (typed: a number)"
            Expect.isTrue (config.RootElement.GetProperty("commit").GetString().Length > 0) "the commit is recorded"
            let sweep = temp "sweep"
            Expect.equal (run [ "--sweep"; "method.alpha=0,0.2"; "--out"; sweep ]) 0 "sweep exit code"
            let sweepReport = File.ReadAllText(Path.Combine(sweep, "report.md"))
            Expect.stringContains sweepReport "| SimKO alpha = 0.2 |" "a row per value"
            Expect.stringContains sweepReport "### Each value − GRPO, paired by seed" "the paired table against the unswept GRPO baseline"
            use sweepJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(sweep, "results.json")))
            let pairedAlpha = sweepJson.RootElement.GetProperty("paired_by_value").GetProperty("simko-alpha-0.2")
            Expect.equal (pairedAlpha.GetProperty("against").GetString()) "grpo" "paired with the GRPO run"
            Expect.equal (pairedAlpha.GetProperty("value").GetDouble()) 0.2 "the swept value, typed"
            Expect.sequenceEqual (File.ReadAllBytes(Path.Combine(sweep, "sweep.png"))).[1..3] "PNG"B "sweep.png is a PNG"
        testCase "reproduce writes a report whose files exist and parse" <| fun () ->
            let out = temp "reproduce"
            let code =
                match parsed [| "reproduce"; "--quick"; "--out"; out; "--methods"; "grpo"; "simko"; "--seeds"; "1"; "--steps"; "3"; "--base-steps"; "30"
                                "--eval-samples"; "4"; "--eval-problems"; "8" |] with
                | SimKO.Cli.Commands.Command.Reproduce spec -> SimKO.Host.Commands.ReproduceCommand.Run(spec, NullLogger.Instance)
                | other -> failtestf "parsed as %A" other
            Expect.equal code 0 "exit code"
            let report = File.ReadAllText(Path.Combine(out, "report.md"))
            for row in [ "| Base |"; "| GRPO |"; "| SimKO |"; "| @1 | @2 | @4 |" ] do
                Expect.stringContains report row "report table"
            use results = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "results.json")))
            let passAt1 = results.RootElement.GetProperty("runs").GetProperty("simko").GetProperty("pass_at_k").GetProperty("1")
            Expect.equal (passAt1.GetArrayLength()) 1 "one seed"
            use config = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "config.json")))
            Expect.equal (config.RootElement.GetProperty("rl_steps").GetInt32()) 3 "config records the run"
            for png in [ "pass_at_k.png"; "lambda.png"; "entropy.png" ] do
                let bytes = File.ReadAllBytes(Path.Combine(out, png))
                Expect.sequenceEqual bytes.[1..3] "PNG"B (sprintf "%s is a PNG" png)
            for m in [ "grpo"; "simko" ] do
                let lines = File.ReadAllLines(Path.Combine(out, "runs", sprintf "%s-seed0" m, "metrics.jsonl"))
                Expect.equal lines.Length 3 "one metrics line per step"
                for l in lines do
                    use d = JsonDocument.Parse l
                    Expect.isTrue (d.RootElement.GetProperty("lambda_top1").GetDouble() <= 0.0) "Λ(1) is a log-prob"
    ]
