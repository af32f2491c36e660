/// `simko eval`: pass@K of a model on built-in tasks, dataset presets, BBH, or any data file.
module SimKO.Cli.EvalArgs

open System
open Argu
open SimKO.Cli.RunSpec

type EvalArgs =
    | [<Mandatory>] Model of folder: string
    | Adapter of folder: string
    | Task of name: string
    | Data of path: string
    | Question_Field of name: string
    | Question_Template of template: string
    | Answer_Field of name: string
    | Answer_From of source: string
    | Name of name: string
    | Template of name: string
    | N of samples: int
    | Temperature of t: float
    | Temperatures of ts: float list
    | Top_P of p: float
    | Max_New_Tokens of count: int
    | Problems of count: int
    | Seed of seed: int
    | [<AltCommandLine("-o")>] Out of dir: string
    | Device of device: string
    | DType of dtype: string
    | Skip_Bad_Rows
    | Code_Data of path: string
    | Unsafe_No_Sandbox
    | Data_Format of format: string
    | Reward_Fn of path: string
    | Reward_Errors of mode: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "HF model folder (config.json, model.safetensors, tokenizer)."
            | Adapter _ -> "a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on the base folder."
            | Task _ ->
                sprintf "a built-in task (%s: its held-out split), a math preset (%s), bbh (its 27 tasks), bbh/<task> or humaneval; repeat for several, reported per benchmark and averaged (default countdown unless --data is given)."
                    (builtins |> List.map builtinName |> String.concat ", ") (String.concat ", " SimKO.Data.Math.Datasets.Names)
            | Data _ -> "a JSONL or Parquet file of problems to evaluate on (like train's data_path); with --answer-field and --question-field or --question-template."
            | Question_Field _ -> "--data: the question field(s), '|' between alternatives (default problem|question)."
            | Question_Template _ -> "--data: the question built from several fields, names in braces, e.g. \"{Body} {Question}\"."
            | Answer_Field _ -> "--data: the field holding the reference answer (text or number; default answer)."
            | Answer_From _ -> "--data: answer (the field as is, default), boxed (last \\boxed{} of the field) or hashes (after '#### ')."
            | Name _ -> "--data: the benchmark's name in reports (default: the file's name)."
            | Template _ -> "prompt template for math presets and data files: chat (default) or plain."
            | N _ -> "samples per problem (default 256, the paper's; pass@K for K = 1, 2, 4, … n)."
            | Temperature _ -> "sampling temperature (default 0.6, the paper's)."
            | Temperatures _ -> "a temperature sweep (the paper's Table 5), e.g. --temperatures 0.2 0.4 0.6 0.8 1.0."
            | Top_P _ -> "nucleus sampling (default 0.95, the paper's)."
            | Max_New_Tokens _ -> "response budget (default: the task's)."
            | Problems _ -> "evaluate only the first N problems."
            | Seed _ -> "sampling seed (default 2025)."
            | Out _ -> "folder for eval.json, eval.md and pass_at_k.png (default runs/eval)."
            | Device _ -> "cpu (default), cuda or cuda:N."
            | DType _ -> "the dtype the model is loaded and sampled in: float32 (default) or bfloat16 (on a GPU it halves a 7B model's weights and KV cache; on the CPU it runs, ~100x slower)."
            | Skip_Bad_Rows -> "skip malformed dataset rows instead of stopping; each is logged and listed in <out>/skipped_rows.txt."
            | Code_Data _ -> "a code dataset in HumanEval's format (JSONL or .jsonl.gz) to evaluate by unit tests in the sandbox."
            | Unsafe_No_Sandbox -> "run generated code WITHOUT isolation (limits and timeouts only); only where no sandbox can start."
            | Data_Format _ -> "--data: auto (verl's format when the file has its prompt and reward_model columns, the default), verl, or flat (the named fields)."
            | Reward_Fn _ -> "a Python reward function with verl's signature (path.py or path.py:name), run in the sandbox, scoring the dataset tasks instead of the built-in grader (correct = score > 0)."
            | Reward_Errors _ -> "--reward-fn: warn (a failing sample scores 0 with a warning, the default) or fail (the evaluation stops)."

/// One `--task` name as a typed benchmark.
let parseTask (name: string) : Result<EvalTask, string> =
    match tryBuiltin name with
    | Some b -> Ok(EvalBuiltin b)
    | None when name = "bbh" -> Ok(EvalBbh None)
    | None when name = "humaneval" -> Ok(EvalCode None)
    | None when name.StartsWith "bbh/" ->
        let t = name.Substring 4
        if Seq.contains t SimKO.Data.Logic.Bbh.Tasks then Ok(EvalBbh(Some t))
        else Error(sprintf "--task %s: unknown BBH task '%s'; known: %s" name t (String.concat ", " SimKO.Data.Logic.Bbh.Tasks))
    | None when Seq.contains name SimKO.Data.Math.Datasets.Names -> Ok(EvalPreset name)
    | None ->
        Error(sprintf "--task: '%s' is not a built-in task (%s), a dataset preset (%s), bbh, bbh/<task> or humaneval"
                  name (builtins |> List.map builtinName |> String.concat ", ") (String.concat ", " SimKO.Data.Math.Datasets.Names))

/// The typed spec of the arguments, or every problem at once.
let toSpec (r: ParseResults<EvalArgs>) : Result<EvalSpec, string list> =
    let errors = ResizeArray<string>()
    let ok = function Ok x -> Some x | Error (e: string) -> errors.Add e; None
    let file =
        match r.TryGetResult Data with
        | None ->
            for unused, flag in [ r.Contains Question_Field, "--question-field"; r.Contains Question_Template, "--question-template"
                                  r.Contains Answer_Field, "--answer-field"; r.Contains Answer_From, "--answer-from"; r.Contains Name, "--name"
                                  r.Contains Data_Format, "--data-format" ] do
                if unused then errors.Add(sprintf "%s applies to --data; give --data too" flag)
            None
        | Some path ->
            if r.Contains Question_Field && r.Contains Question_Template then errors.Add "--data: give --question-field or --question-template, not both"
            let question =
                match r.TryGetResult Question_Template with
                | Some t ->
                    try SimKO.Data.Math.QuestionTemplate.Parse t |> ignore
                    with :? SimKO.Data.Math.DatasetException as e -> errors.Add(sprintf "--question-template: %s" e.Message)
                    QuestionTemplate t
                | None -> QuestionFields(r.GetResult(Question_Field, defaultValue = "problem|question").Split('|', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray)
            let from =
                r.TryGetResult Answer_From
                |> Option.map (parseName "answer source" answerSourceName [ AnswerField; BoxedInSolution; AfterHashes ] >> Result.mapError (sprintf "--answer-from: %s") >> ok)
                |> Option.flatten
            let format =
                r.TryGetResult Data_Format
                |> Option.map (parseName "data format" dataFormatName [ AutoFormat; VerlFormat; FlatFormat ] >> Result.mapError (sprintf "--data-format: %s") >> ok)
                |> Option.flatten
            Some(EvalFile { Path = path; Question = question; AnswerField = r.GetResult(Answer_Field, defaultValue = "answer")
                            AnswerFrom = defaultArg from AnswerField; Name = r.TryGetResult Name; Format = defaultArg format AutoFormat })
    let named = r.GetResults Task |> List.choose (parseTask >> ok)
    let code = r.TryGetResult Code_Data |> Option.map (Some >> EvalCode) |> Option.toList
    let tasks =
        match named @ code, file with
        | [], None -> [ EvalBuiltin Countdown ]
        | ts, Some f -> ts @ [ f ]
        | ts, None -> ts
    let template =
        parseName "prompt template" templateName [ Chat; Plain ] (r.GetResult(Template, defaultValue = "chat"))
        |> Result.mapError (sprintf "--template: %s") |> ok
    let device = parseDevice (r.GetResult(Device, defaultValue = "cpu")) |> Result.mapError (sprintf "--device: %s") |> ok
    let dtype =
        parseName "dtype" dtypeName [ Float32; BFloat16 ] (r.GetResult(DType, defaultValue = "float32"))
        |> Result.mapError (sprintf "--dtype: %s") |> ok
    let spec =
        { Model = r.GetResult Model
          Adapter = r.TryGetResult Adapter
          Tasks = tasks
          Template = defaultArg template Chat
          SkipBadRows = r.Contains Skip_Bad_Rows
          Samples = r.GetResult(N, defaultValue = 256)
          Temperatures = (match r.TryGetResult Temperatures with Some ts -> ts | None -> [ r.GetResult(Temperature, defaultValue = 0.6) ])
          TopP = r.GetResult(Top_P, defaultValue = 0.95)
          MaxNewTokens = r.TryGetResult Max_New_Tokens
          Problems = r.TryGetResult Problems
          Seed = r.GetResult(Seed, defaultValue = 2025)
          Out = r.GetResult(Out, defaultValue = "runs/eval")
          Device = defaultArg device Cpu
          DType = defaultArg dtype Float32
          UnsafeNoSandbox = r.Contains Unsafe_No_Sandbox
          RewardFn =
            match r.TryGetResult Reward_Fn with
            | None ->
                if r.Contains Reward_Errors then errors.Add "--reward-errors applies to --reward-fn; give --reward-fn too"
                None
            | Some path ->
                let mode =
                    parseName "reward errors" rewardErrorsName [ WarnOnError; FailOnError ] (r.GetResult(Reward_Errors, defaultValue = "warn"))
                    |> Result.mapError (sprintf "--reward-errors: %s") |> ok
                Some { Function = path; Errors = defaultArg mode WarnOnError } }
    if spec.Samples < 1 then errors.Add(sprintf "--n must be >= 1, got %d" spec.Samples)
    if spec.Temperatures |> List.exists (fun t -> not (t > 0.0)) then errors.Add "temperatures must be > 0"
    if not (spec.TopP > 0.0 && spec.TopP <= 1.0) then errors.Add(sprintf "--top-p must be in (0, 1], got %g" spec.TopP)
    match spec.Problems with Some p when p < 1 -> errors.Add(sprintf "--problems must be >= 1, got %d" p) | _ -> ()
    match spec.MaxNewTokens with Some p when p < 1 -> errors.Add(sprintf "--max-new-tokens must be >= 1, got %d" p) | _ -> ()
    if errors.Count = 0 then Ok spec else Error(List.ofSeq errors)
