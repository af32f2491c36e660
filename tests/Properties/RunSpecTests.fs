/// The typed run specification (SimKO.Cli): command lines and config files become typed values
/// once, settings reach the math through those values, and configs round-trip.
module SimKO.Tests.RunSpecTests

open System.IO
open Expecto
open SimKO.Math
open SimKO.Cli
open SimKO.Cli.RunSpec

let private parse (argv: string list) =
    match Commands.parse (Array.ofList argv) with
    | Commands.Parsed.Run c -> Ok c
    | Commands.Parsed.Exit (message, _) -> Error message

let private train (sets: string list) =
    match parse ("train" :: (sets |> List.collect (fun s -> [ "--set"; s ]))) with
    | Ok (Commands.Command.Train (spec, _)) -> spec
    | Ok other -> failtestf "parsed as %A" other
    | Error e -> failtestf "rejected: %s" e

let private reproduce (args: string list) =
    match parse ("reproduce" :: args) with
    | Ok (Commands.Command.Reproduce spec) -> spec
    | Ok other -> failtestf "parsed as %A" other
    | Error e -> failtestf "rejected: %s" e

let tests =
    testList "run spec" [
        testCase "--set method.alpha reaches Shaping's α through typed values only" <| fun () ->
            let spec = train [ "method=simko"; "method.alpha=0.05"; "method.k=5" ]
            match (Methods.objective spec.Method).Shaping with
            | Objective.Simko s -> Expect.equal (s.Alpha, s.K) (0.05, 5) "the shaping the loss uses"
            | other -> failtestf "not SimKO shaping: %A" other
        testCase "modes are union cases: tiny model, devices, dtypes, rollout server, data files" <| fun () ->
            let s = train [ "model=tiny"; "device=cuda:1"; "dtype=bfloat16"; "rollout_url=http://127.0.0.1:9000"; "rollout_server=sglang" ]
            Expect.equal s.Model TinyModel "tiny is a case"
            Expect.equal s.Device (Cuda 1) "cuda:1"
            Expect.equal (s.DType, s.ExportDType) (BFloat16, BFloat16) "export dtype defaults to the compute dtype"
            match s.Rollout with
            | Server r -> Expect.equal (r.Url, r.Kind) ("http://127.0.0.1:9000", Sglang) "server"
            | InProcess -> failtest "rollout_url ignored"
            let f = train [ "model=/m"; "data_path=svamp.jsonl"; "question_template={Body} {Question}"; "answer_field=Answer"; "export_dtype=float32" ]
            Expect.equal f.ExportDType Float32 "export dtype"
            match f.Task with
            | File d -> Expect.equal (d.Question, d.AnswerField, d.AnswerFrom) (QuestionTemplate "{Body} {Question}", "Answer", AnswerField) "data file"
            | other -> failtestf "task %A" other
            Expect.equal (train [ "task=order" ]).Task (Builtin Order) "built-in"
            Expect.equal (train [ "task=gsm8k"; "model=/m" ]).Task (Preset "gsm8k") "preset"
        testCase "bad values are named with what was expected, all at once" <| fun () ->
            match parse [ "train"; "--set"; "device=tpu"; "--set"; "dtype=fp8"; "--set"; "rollout_url=ftp://x"; "--set"; "task=nope"
                          "--set"; "method=grpo"; "--set"; "method.alpha=0.1"; "--set"; "task=gsm8k" ] with
            | Ok c -> failtestf "accepted: %A" c
            | Error e ->
                for fragment in [ "device: 'tpu' is not a device"; "dtype: 'fp8' is not one of float32, bfloat16"; "rollout_url must be an http"
                                  "setting 'alpha' does not apply to method 'grpo'"; "model: gsm8k is a dataset for a general model" ] do
                    Expect.stringContains e fragment "message"
        testCase "reward_fn, reward_errors and data_format are typed settings; reward_fn on a built-in task and data_format without data_path are errors" <| fun () ->
            let s = train [ "model=/m"; "data_path=train.parquet"; "data_format=verl"; "reward_fn=r.py:score"; "reward_errors=fail" ]
            Expect.equal s.RewardFn (Some { Function = "r.py:score"; Errors = FailOnError }) "reward function"
            match s.Task with
            | File d -> Expect.equal d.Format VerlFormat "data format"
            | other -> failtestf "task %A" other
            Expect.equal (train [ "model=/m"; "task=gsm8k" ]).RewardFn None "none by default: the built-in verifiers"
            Expect.equal (train [ "model=/m"; "task=gsm8k"; "reward_fn=r.py" ]).RewardFn (Some { Function = "r.py"; Errors = WarnOnError }) "warn by default"
            match parse [ "train"; "--set"; "task=countdown"; "--set"; "reward_fn=r.py"; "--set"; "data_format=flat"; "--set"; "reward_errors=maybe" ] with
            | Ok c -> failtestf "accepted: %A" c
            | Error e ->
                for fragment in [ "reward_fn (r.py) scores dataset tasks"; "data_format applies to data_path"; "reward_errors: 'maybe' is not one of warn, fail" ] do
                    Expect.stringContains e fragment "message"
            let roundTrip = train [ "model=/m"; "data_path=t.jsonl"; "data_format=flat"; "reward_fn=r.py"; "reward_errors=fail" ]
            let dir = Path.Combine(Path.GetTempPath(), sprintf "simko-byo-spec-%d" System.Environment.ProcessId)
            Directory.CreateDirectory dir |> ignore
            let path = Path.Combine(dir, "config.json")
            File.WriteAllText(path, TrainConfig.toJson roundTrip)
            match parse [ "train"; "--config"; path ] with
            | Ok (Commands.Command.Train (back, _)) -> Expect.equal (back.RewardFn, back.Task) (roundTrip.RewardFn, roundTrip.Task) "config.json keeps them"
            | other -> failtestf "config.json: %A" other
        testCase "a run's config.json reads back to the same spec" <| fun () ->
            let spec = train [ "method=kl-cov"; "method.ratio=0.01"; "method.kl_beta=0.05"; "method.kl_estimator=k2"; "steps=7"; "lr=1e-5"
                               "gradient_checkpointing=true"; "logits_chunk_tokens=1024"; "rollout_url=http://localhost:8000"; "rollout_server=vllm" ]
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-spec-%d.json" System.Environment.ProcessId)
            File.WriteAllText(path, TrainConfig.toJson spec)
            match parse [ "train"; "--config"; path ] with
            | Ok (Commands.Command.Train (back, _)) -> Expect.equal back spec "round trip"
            | other -> failtestf "%A" other
            File.Delete path
        testCase "one number parser: an integer setting takes a number text iff it is integral, training and method settings alike" <| fun () ->
            let s = train [ "steps=3.0"; "prompts_per_step=1e1"; "method=simko"; "method.k=4.0" ]
            Expect.equal (s.Steps, s.PromptsPerStep) (3, 10) "3.0 is 3, 1e1 is 10"
            Expect.equal (Methods.ownOf Methods.simko s.Method |> Option.map _.K) (Some 4) "method.k=4.0 is 4"
            match parse [ "train"; "--set"; "steps=2.5"; "--set"; "method.k=1.5"; "--set"; "lr=0x10"; "--set"; "top_k=3e10" ] with
            | Ok c -> failtestf "accepted %A" c
            | Error e ->
                for fragment in [ "steps: 2.5 is not an integer"; "setting 'k' of method 'simko': 1.5 is not an integer"
                                  "lr: '0x10' is not a number"; "top_k: 3e10 is not an integer" ] do
                    Expect.stringContains e fragment "message"
        testCase "config.json is typed (numbers as numbers, booleans as booleans) and old string-valued files still load" <| fun () ->
            let spec = train [ "method=kl-cov"; "method.ratio=0.01"; "steps=7"; "lr=1e-5"; "gradient_checkpointing=true"; "tensorboard=false" ]
            let json = System.Text.Json.Nodes.JsonNode.Parse(TrainConfig.toJson spec).AsObject()
            let kind (n: System.Text.Json.Nodes.JsonNode) = if isNull n then System.Text.Json.JsonValueKind.Null else n.GetValueKind()
            Expect.equal (kind json["steps"]) System.Text.Json.JsonValueKind.Number "steps"
            Expect.equal (json["steps"].GetValue<int>()) 7 "steps = 7"
            Expect.equal (kind json["lr"]) System.Text.Json.JsonValueKind.Number "lr"
            Expect.equal (kind json["gradient_checkpointing"]) System.Text.Json.JsonValueKind.True "flag"
            Expect.equal (kind json["tensorboard"]) System.Text.Json.JsonValueKind.False "flag"
            Expect.equal (kind json["task"]) System.Text.Json.JsonValueKind.String "text"
            Expect.equal (kind (json["method_settings"]["ratio"])) System.Text.Json.JsonValueKind.Number "method setting"
            Expect.equal (kind (json["method_settings"]["dual_clip"])) System.Text.Json.JsonValueKind.Null "off is null"
            // the old format: every value a string ("steps": "7", "dual_clip": "off")
            let old = System.Text.Json.Nodes.JsonObject()
            let str (n: System.Text.Json.Nodes.JsonNode) =
                match kind n with
                | System.Text.Json.JsonValueKind.Null -> "off"
                | System.Text.Json.JsonValueKind.String -> n.GetValue<string>()
                | _ -> n.ToJsonString()
            for kv in json do
                if kv.Key = "method_settings" then
                    let ms = System.Text.Json.Nodes.JsonObject()
                    for m in kv.Value.AsObject() do ms[m.Key] <- System.Text.Json.Nodes.JsonValue.Create(str m.Value)
                    old[kv.Key] <- ms
                else old[kv.Key] <- System.Text.Json.Nodes.JsonValue.Create(if isNull kv.Value then "" else str kv.Value)
            for name, text in [ "typed", json.ToJsonString(); "old", old.ToJsonString() ] do
                let path = Path.Combine(Path.GetTempPath(), sprintf "simko-%s-%d.json" name System.Environment.ProcessId)
                File.WriteAllText(path, text)
                match parse [ "train"; "--config"; path ] with
                | Ok (Commands.Command.Train (back, _)) -> Expect.equal back spec (sprintf "%s config reads back" name)
                | other -> failtestf "%s: %A" name other
                File.Delete path
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-bad-%d.json" System.Environment.ProcessId)
            File.WriteAllText(path, """{"steps": [1, 2]}""")
            match parse [ "train"; "--config"; path ] with
            | Ok c -> failtestf "accepted %A" c
            | Error e -> Expect.stringContains e (sprintf "%s: steps: expected a number, true/false, a string or null, got [1, 2]" path) "names file and key"
            File.Delete path
        testCase "eval --dtype loads the model in float32 (default) or bfloat16 and names a bad value" <| fun () ->
            match parse [ "eval"; "--model"; "m"; "--task"; "humaneval" ], parse [ "eval"; "--model"; "m"; "--dtype"; "bfloat16" ] with
            | Ok (Commands.Command.Eval d), Ok (Commands.Command.Eval b) -> Expect.equal (d.DType, b.DType) (Float32, BFloat16) "dtypes"
            | other -> failtestf "%A" other
            match parse [ "eval"; "--model"; "m"; "--dtype"; "fp8" ] with
            | Ok c -> failtestf "accepted %A" c
            | Error e -> Expect.stringContains e "--dtype" "names the flag"
        testCase "eval --data builds a typed data file with its template, answer field and name" <| fun () ->
            match parse [ "eval"; "--model"; "m"; "--data"; "svamp.jsonl"; "--question-template"; "{Body} {Question}"; "--answer-field"; "Answer"; "--name"; "svamp" ] with
            | Ok (Commands.Command.Eval e) ->
                Expect.equal e.Tasks [ EvalFile { Path = "svamp.jsonl"; Question = QuestionTemplate "{Body} {Question}"; AnswerField = "Answer"; AnswerFrom = AnswerField; Name = Some "svamp"; Format = AutoFormat } ] "tasks"
            | other -> failtestf "%A" other
            match parse [ "eval"; "--model"; "m"; "--answer-field"; "x"; "--task"; "bbh/nope" ] with
            | Ok c -> failtestf "accepted %A" c
            | Error e ->
                Expect.stringContains e "--answer-field applies to --data" "data-only flag"
                Expect.stringContains e "unknown BBH task 'nope'" "bbh task"
        testCase "reproduce's defaults: 300 RL steps, 1000 warm-start steps and n = 64 for every task but program (30, 2000 and 16); --quick and explicit values win" <| fun () ->
            let shape (s: ReproduceSpec) = s.Steps, s.BaseSteps, s.EvalSamples, s.Seeds, s.EvalProblems
            for task in [ "countdown"; "order"; "wordmath" ] do
                Expect.equal (shape (reproduce [ "--task"; task ])) (300, 1000, 64, 3, None) task
                Expect.equal (shape (reproduce [ "--task"; task; "--quick" ])) (24, 300, 16, 1, Some 64) (task + " --quick")
            Expect.equal (shape (reproduce [])) (300, 1000, 64, 3, None) "the default task"
            Expect.equal (shape (reproduce [ "--task"; "program" ])) (30, 2000, 16, 3, None) "program"
            Expect.equal (shape (reproduce [ "--task"; "program"; "--quick" ])) (24, 300, 16, 1, Some 64) "program --quick"
            Expect.equal (shape (reproduce [ "--task"; "program"; "--steps"; "50"; "--eval-samples"; "32"; "--base-steps"; "1500" ])) (50, 1500, 32, 3, None) "explicit values"
        testCase "--ablation trains SimKO, SimKO with one part off at a time, and GRPO" <| fun () ->
            let spec = reproduce [ "--quick"; "--ablation" ]
            Expect.equal spec.Study Study.Ablation "study"
            let byKey = spec.Variants |> List.map (fun v -> v.Key, v.Method) |> Map.ofList
            let simko k = match Methods.ownOf Methods.simko byKey[k] with Some s -> s | None -> failtestf "%s is %A" k byKey[k]
            let full = simko "simko"
            Expect.equal (simko "simko-no-smoothing") { full with Alpha = 0.0 } "α = 0"
            Expect.equal (simko "simko-no-push") { full with Lambda = 1.0 } "λ = 1"
            Expect.equal (simko "simko-no-gate") { full with Q = 0.0 } "every token"
            Expect.equal (Methods.name byKey["grpo"]) "grpo" "GRPO"
        testCase "--sweep gives one run per value, of a method setting or a training setting" <| fun () ->
            let spec = reproduce [ "--sweep"; "method.alpha=0,0.05,0.1" ]
            Expect.equal spec.Study (Study.Sweep "method.alpha") "study"
            let alphas = spec.Variants |> List.choose (fun v -> Methods.ownOf Methods.simko v.Method |> Option.map _.Alpha)
            Expect.equal alphas [ 0.0; 0.05; 0.1 ] "α values"
            // GRPO has no α: it trains once, unswept, as the baseline every value is paired with
            let baselines = spec.Variants |> List.filter (fun v -> Methods.name v.Method = "grpo")
            Expect.equal (baselines |> List.map (fun v -> v.Key, v.Swept)) [ "grpo", None ] "one unswept GRPO baseline"
            Expect.equal spec.Variants.Length 4 "GRPO + three SimKO values"
            match parse [ "reproduce"; "--sweep"; "method.alpha=0,0.1"; "--methods"; "grpo" ] with
            | Ok c -> failtestf "a sweep of a setting no method has was accepted: %A" c
            | Error e -> Expect.stringContains e "no --methods entry has the setting 'alpha'" "named"
            let lr = reproduce [ "--sweep"; "lr=1e-4,3e-4"; "--methods"; "grpo" ]
            Expect.equal (lr.Variants |> List.map (fun v -> v.Swept)) [ Some("lr", Settings.Num 1e-4); Some("lr", Settings.Num 3e-4) ] "training-setting sweep, typed"
            // the variant is a function of the typed spec: it changes lr and nothing else
            let runs = lr.Variants |> List.map (fun v -> TrainConfig.studyRun Countdown 12 5 "out" 1 true "base" v)
            match runs with
            | [ Ok a; Ok b ] ->
                Expect.equal (a.Optimizer.LearningRate, b.Optimizer.LearningRate) (1e-4, 3e-4) "lr of each run"
                Expect.equal { a with Optimizer = b.Optimizer } b "nothing else differs"
                Expect.equal (a.Steps, a.Seed, a.Model, a.Out, a.Tensorboard, a.KeepCheckpoints) (5, 1, HfFolder "base", "out", false, 1) "the study's record update"
                Expect.equal (Methods.name a.Method) "grpo" "the variant's method"
            | other -> failtestf "%A" other
            match parse [ "reproduce"; "--sweep"; "method.alpha=0,x" ] with
            | Ok c -> failtestf "accepted %A" c
            | Error e -> Expect.stringContains e "'x' is not a number" "bad sweep value"
        testCase "each method's name is written once and every name parses back" <| fun () ->
            for m in Methods.all do
                Expect.equal (Methods.byName (Methods.name m)) (Ok m) (Methods.name m)
            Expect.equal (List.distinct Methods.names).Length Methods.all.Length "distinct names"
    ]
