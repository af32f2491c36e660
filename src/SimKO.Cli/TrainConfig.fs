/// The training configuration: one record, one table of fields. Each field has a name (as in the
/// JSON config file and `--set name=value`), a default, and a line saying what it is and where the
/// default comes from. A config file and command-line overrides are applied in order and every
/// problem is reported at once.
module SimKO.Cli.TrainConfig

open System
open System.Globalization
open System.IO
open System.Text.Json

type TrainConfig =
    { // what to train on
      Task: string
      DataPath: string option
      QuestionField: string
      AnswerField: string
      AnswerFrom: string
      SkipBadRows: bool
      PromptTemplate: string
      Model: string
      // method
      Method: string
      MethodSettings: (string * SimKO.Math.Methods.SettingValue) list
      // rollout
      Steps: int
      PromptsPerStep: int
      SamplesPerPrompt: int
      Temperature: float
      TopP: float
      TopK: int
      MaxNewTokens: int
      // update
      MiniBatches: int
      MicroBatchSize: int
      PpoEpochs: int
      LearningRate: float
      WarmupSteps: int
      Beta1: float
      Beta2: float
      WeightDecay: float
      GradClip: float
      MaxBadSteps: int
      // run
      Seed: int
      Device: string
      DType: string
      Out: string
      CheckpointEvery: int
      KeepCheckpoints: int
      Tensorboard: bool }

/// CPU-scale defaults: the Countdown setting of REPRODUCTION-NOTES (where GRPO's pass@K collapse
/// appears in minutes); the paper's GPU settings are in comments of the fields.
let defaults =
    { Task = "countdown"
      DataPath = None
      QuestionField = "problem|question"
      AnswerField = "answer"
      AnswerFrom = "answer"
      SkipBadRows = false
      PromptTemplate = "chat"
      Model = "tiny"
      Method = "simko"; MethodSettings = []
      Steps = 300; PromptsPerStep = 16; SamplesPerPrompt = 8; Temperature = 1.0; TopP = 1.0; TopK = 0; MaxNewTokens = 12
      MiniBatches = 1; MicroBatchSize = 64; PpoEpochs = 1
      LearningRate = 3e-4; WarmupSteps = 0; Beta1 = 0.9; Beta2 = 0.99; WeightDecay = 0.0; GradClip = 1.0; MaxBadSteps = 3
      Seed = 0; Device = "cpu"; DType = "float32"; Out = "runs/train"; CheckpointEvery = 50; KeepCheckpoints = 2; Tensorboard = true }

type Field =
    { Name: string
      Doc: string
      Show: TrainConfig -> string
      Set: string -> TrainConfig -> Result<TrainConfig, string> }

let private num (s: string) =
    match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v -> Ok v
    | _ -> Error(sprintf "'%s' is not a number" s)

let private int' (s: string) =
    match Int32.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
    | true, v -> Ok v
    | _ -> Error(sprintf "'%s' is not an integer" s)

let private bool' (s: string) =
    match s.ToLowerInvariant() with
    | "true" | "1" | "yes" -> Ok true
    | "false" | "0" | "no" -> Ok false
    | _ -> Error(sprintf "'%s' is not true/false" s)

let private inv (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

let private str name doc (get: TrainConfig -> string) set =
    { Name = name; Doc = doc; Show = get; Set = fun v c -> Ok(set v c) }
let private optStr name doc (get: TrainConfig -> string option) set =
    { Name = name; Doc = doc; Show = (fun c -> defaultArg (get c) "(none)"); Set = fun v c -> Ok(set (if v = "" then None else Some v) c) }
let private float' name doc (get: TrainConfig -> float) set =
    { Name = name; Doc = doc; Show = (get >> inv); Set = fun v c -> num v |> Result.map (fun x -> set x c) }
let private integer name doc (get: TrainConfig -> int) set =
    { Name = name; Doc = doc; Show = (get >> string); Set = fun v c -> int' v |> Result.map (fun x -> set x c) }
let private boolean name doc (get: TrainConfig -> bool) set =
    { Name = name; Doc = doc; Show = (get >> string >> fun s -> s.ToLowerInvariant()); Set = fun v c -> bool' v |> Result.map (fun x -> set x c) }

/// Every field, in the order `--help` lists them.
let fields : Field list =
    [ str "task" "built-in task (countdown) or math dataset preset (gsm8k, math500, aime24, aime25, amc23, minerva_math, olympiadbench; needs model = an HF folder)" (fun c -> c.Task) (fun v c -> { c with Task = v })
      optStr "data_path" "a JSONL or Parquet (.parquet) file of math problems to train on instead of task (needs model = an HF folder)" (fun c -> c.DataPath) (fun v c -> { c with DataPath = v })
      str "question_field" "data_path: question field(s), '|' between alternatives" (fun c -> c.QuestionField) (fun v c -> { c with QuestionField = v })
      str "answer_field" "data_path: the field holding the answer" (fun c -> c.AnswerField) (fun v c -> { c with AnswerField = v })
      str "answer_from" "data_path: answer (the field as is), boxed (last \\boxed{} of the field), hashes (after '#### ')" (fun c -> c.AnswerFrom) (fun v c -> { c with AnswerFrom = v })
      boolean "skip_bad_rows" "data_path and dataset presets: skip malformed rows, listing each in the log and <out>/skipped_rows.txt, instead of stopping" (fun c -> c.SkipBadRows) (fun v c -> { c with SkipBadRows = v })
      str "prompt_template" "for dataset presets: chat (the model's chat template + the paper's instruction) or plain" (fun c -> c.PromptTemplate) (fun v c -> { c with PromptTemplate = v })
      str "model" "an HF folder (config.json + safetensors + the task's tokenizer, e.g. runs/reproduce/base), or 'tiny' for a freshly initialised small model" (fun c -> c.Model) (fun v c -> { c with Model = v })
      str "method" "grpo, simko, psr, nsr, w-reinforce, kl-cov, entropy-adv, forking, passk, dr-grpo (SPEC §2–4)" (fun c -> c.Method) (fun v c -> { c with Method = v })
      integer "steps" "training steps (paper: ~ a few hundred; notes: 300 for Countdown)" (fun c -> c.Steps) (fun v c -> { c with Steps = v })
      integer "prompts_per_step" "prompts sampled per step (paper 1024; notes 16)" (fun c -> c.PromptsPerStep) (fun v c -> { c with PromptsPerStep = v })
      integer "samples_per_prompt" "responses per prompt, the group size G (paper 8)" (fun c -> c.SamplesPerPrompt) (fun v c -> { c with SamplesPerPrompt = v })
      float' "temperature" "rollout sampling temperature (paper 1.0)" (fun c -> c.Temperature) (fun v c -> { c with Temperature = v })
      float' "top_p" "rollout nucleus sampling (1 = off)" (fun c -> c.TopP) (fun v c -> { c with TopP = v })
      integer "top_k" "rollout top-k sampling (0 = off)" (fun c -> c.TopK) (fun v c -> { c with TopK = v })
      integer "max_new_tokens" "longest response (paper 3072; 12 for Countdown)" (fun c -> c.MaxNewTokens) (fun v c -> { c with MaxNewTokens = v })
      integer "mini_batches" "PPO mini-batches per step (paper 4: 1024 prompts / 256)" (fun c -> c.MiniBatches) (fun v c -> { c with MiniBatches = v })
      integer "micro_batch_size" "responses per forward/backward (gradient accumulation; does not change the gradient)" (fun c -> c.MicroBatchSize) (fun v c -> { c with MicroBatchSize = v })
      integer "ppo_epochs" "passes over each step's rollouts (paper 1)" (fun c -> c.PpoEpochs) (fun v c -> { c with PpoEpochs = v })
      float' "lr" "AdamW learning rate, constant after warm-up (paper 1e-6; notes 3e-4 for a 0.4M model)" (fun c -> c.LearningRate) (fun v c -> { c with LearningRate = v })
      integer "warmup_steps" "linear learning-rate warm-up steps" (fun c -> c.WarmupSteps) (fun v c -> { c with WarmupSteps = v })
      float' "beta1" "AdamW β1" (fun c -> c.Beta1) (fun v c -> { c with Beta1 = v })
      float' "beta2" "AdamW β2 (notes 0.99)" (fun c -> c.Beta2) (fun v c -> { c with Beta2 = v })
      float' "weight_decay" "AdamW decoupled weight decay" (fun c -> c.WeightDecay) (fun v c -> { c with WeightDecay = v })
      float' "grad_clip" "gradient-norm clip (paper 1.0)" (fun c -> c.GradClip) (fun v c -> { c with GradClip = v })
      integer "max_bad_steps" "a NaN/Inf loss or gradient skips the update; this many skipped updates stop the run" (fun c -> c.MaxBadSteps) (fun v c -> { c with MaxBadSteps = v })
      integer "seed" "seed of prompt order, sampling and initialisation" (fun c -> c.Seed) (fun v c -> { c with Seed = v })
      str "device" "cpu, cuda or cuda:N" (fun c -> c.Device) (fun v c -> { c with Device = v })
      str "dtype" "float32 (CPU) or bfloat16 (CUDA)" (fun c -> c.DType) (fun v c -> { c with DType = v })
      str "out" "run folder: metrics.jsonl, tensorboard/, checkpoints/, final/ (HF export)" (fun c -> c.Out) (fun v c -> { c with Out = v })
      integer "checkpoint_every" "steps between checkpoints (one is always written at the end)" (fun c -> c.CheckpointEvery) (fun v c -> { c with CheckpointEvery = v })
      integer "keep_checkpoints" "complete checkpoints kept" (fun c -> c.KeepCheckpoints) (fun v c -> { c with KeepCheckpoints = v })
      boolean "tensorboard" "write TensorBoard event files" (fun c -> c.Tensorboard) (fun v c -> { c with Tensorboard = v }) ]

/// Names accepted as method settings (`method.<name>` in JSON / `--set method.<name>=v`).
let private methodSettingPrefix = "method."

let private setOne (c: TrainConfig) (key: string) (value: string) : Result<TrainConfig, string> =
    if key.StartsWith methodSettingPrefix then
        let name = key.Substring methodSettingPrefix.Length
        let v =
            match num value with
            | Ok x -> SimKO.Math.Methods.Number x
            | Error _ -> SimKO.Math.Methods.Text value
        Ok { c with MethodSettings = c.MethodSettings @ [ name, v ] }
    else
        match fields |> List.tryFind (fun f -> f.Name = key) with
        | Some f -> f.Set value c |> Result.mapError (fun e -> sprintf "%s: %s" key e)
        | None -> Error(sprintf "unknown setting '%s'; valid: %s, method.<name>" key (fields |> List.map _.Name |> String.concat ", "))

/// Apply (key, value) pairs in order: the config with every valid pair applied, and the problems.
let applyAll (pairs: (string * string) list) (c: TrainConfig) : TrainConfig * string list =
    let folder (cfg, errors) (k, v) =
        match setOne cfg k v with
        | Ok cfg -> cfg, errors
        | Error e -> cfg, errors @ [ e ]
    List.fold folder (c, []) pairs

/// Apply (key, value) pairs in order; every problem at once.
let apply (pairs: (string * string) list) (c: TrainConfig) : Result<TrainConfig, string list> =
    match applyAll pairs c with
    | cfg, [] -> Ok cfg
    | _, errors -> Error errors

/// (key, value) pairs of a JSON config file; `method_settings` may be an object of method settings.
let readFile (path: string) : Result<(string * string) list, string list> =
    try
        use doc = JsonDocument.Parse(File.ReadAllText path)
        if doc.RootElement.ValueKind <> JsonValueKind.Object then Error [ sprintf "%s: the config must be a JSON object" path ]
        else
            let text (e: JsonElement) =
                match e.ValueKind with
                | JsonValueKind.String -> e.GetString()
                | JsonValueKind.Null -> ""
                | _ -> e.GetRawText()
            Ok [ for p in doc.RootElement.EnumerateObject() do
                   if p.Name = "method_settings" && p.Value.ValueKind = JsonValueKind.Object then
                       for s in p.Value.EnumerateObject() do
                           yield methodSettingPrefix + s.Name, text s.Value
                   else yield p.Name, text p.Value ]
    with
    | :? JsonException as e -> Error [ sprintf "%s: not valid JSON (%s)" path e.Message ]
    | :? IOException as e -> Error [ sprintf "%s: cannot read (%s)" path e.Message ]

/// Checks across fields; every problem at once, each saying how to fix it.
let validate (c: TrainConfig) : string list =
    [ if c.Steps < 1 then yield sprintf "steps must be >= 1, got %d" c.Steps
      if c.PromptsPerStep < 1 then yield sprintf "prompts_per_step must be >= 1, got %d" c.PromptsPerStep
      if c.SamplesPerPrompt < 1 then yield sprintf "samples_per_prompt must be >= 1, got %d" c.SamplesPerPrompt
      if not (c.Temperature > 0.0) then yield sprintf "temperature must be > 0, got %g" c.Temperature
      if not (c.TopP > 0.0 && c.TopP <= 1.0) then yield sprintf "top_p must be in (0, 1], got %g" c.TopP
      if c.TopK < 0 then yield sprintf "top_k must be >= 0 (0 = off), got %d" c.TopK
      if c.MaxNewTokens < 1 then yield sprintf "max_new_tokens must be >= 1, got %d" c.MaxNewTokens
      if c.MiniBatches < 1 || c.PromptsPerStep % max 1 c.MiniBatches <> 0 then
          yield sprintf "mini_batches = %d must divide prompts_per_step = %d (mini-batches hold whole groups)" c.MiniBatches c.PromptsPerStep
      if c.MicroBatchSize < 1 then yield sprintf "micro_batch_size must be >= 1, got %d" c.MicroBatchSize
      if c.PpoEpochs < 1 then yield sprintf "ppo_epochs must be >= 1, got %d" c.PpoEpochs
      if not (c.LearningRate > 0.0) then yield sprintf "lr must be > 0, got %g" c.LearningRate
      if c.WarmupSteps < 0 then yield sprintf "warmup_steps must be >= 0, got %d" c.WarmupSteps
      if not (c.Beta1 >= 0.0 && c.Beta1 < 1.0) then yield sprintf "beta1 must be in [0, 1), got %g" c.Beta1
      if not (c.Beta2 >= 0.0 && c.Beta2 < 1.0) then yield sprintf "beta2 must be in [0, 1), got %g" c.Beta2
      if not (c.WeightDecay >= 0.0) then yield sprintf "weight_decay must be >= 0, got %g" c.WeightDecay
      if not (c.GradClip > 0.0) then yield sprintf "grad_clip must be > 0, got %g" c.GradClip
      if c.MaxBadSteps < 1 then yield sprintf "max_bad_steps must be >= 1, got %d" c.MaxBadSteps
      if c.CheckpointEvery < 1 then yield sprintf "checkpoint_every must be >= 1, got %d" c.CheckpointEvery
      if c.KeepCheckpoints < 1 then yield sprintf "keep_checkpoints must be >= 1, got %d" c.KeepCheckpoints
      if not (List.contains c.AnswerFrom [ "answer"; "boxed"; "hashes" ]) then yield sprintf "answer_from must be answer, boxed or hashes, got '%s'" c.AnswerFrom
      if c.PromptTemplate <> "chat" && c.PromptTemplate <> "plain" then yield sprintf "prompt_template must be chat or plain, got '%s'" c.PromptTemplate
      if c.DType <> "float32" && c.DType <> "bfloat16" then yield sprintf "dtype must be float32 or bfloat16, got '%s'" c.DType
      match SimKO.Math.Methods.byName c.Method with
      | Error e -> yield e
      | Ok m ->
          match SimKO.Math.Methods.withOverrides c.MethodSettings m with
          | Error es -> yield! es |> List.map (sprintf "method settings: %s")
          | Ok m -> yield! SimKO.Math.Methods.validate c.SamplesPerPrompt m |> List.map (sprintf "method settings: %s") ]

/// The method the config names, with its overrides (call after `validate` returned no problem).
let method (c: TrainConfig) =
    match SimKO.Math.Methods.byName c.Method |> Result.bind (fun m -> SimKO.Math.Methods.withOverrides c.MethodSettings m |> Result.mapError (String.concat "; ")) with
    | Ok m -> m
    | Error e -> invalidArg "c" e

/// The configuration as JSON (written into every run folder and checkpoint).
let toJson (c: TrainConfig) : string =
    let o = System.Text.Json.Nodes.JsonObject()
    for f in fields do o[f.Name] <- System.Text.Json.Nodes.JsonValue.Create(f.Show c)
    let ms = System.Text.Json.Nodes.JsonObject()
    for k, v in c.MethodSettings do
        ms[k] <- (match v with
                  | SimKO.Math.Methods.Number x -> System.Text.Json.Nodes.JsonValue.Create x :> System.Text.Json.Nodes.JsonNode
                  | SimKO.Math.Methods.Text t -> System.Text.Json.Nodes.JsonValue.Create t)
    o["method_settings"] <- ms
    o.ToJsonString(JsonSerializerOptions(WriteIndented = true))

/// The table `--help` prints: name, default, what it is and where the default comes from.
let helpText () =
    let lines =
        fields |> List.map (fun f -> sprintf "  %-20s %-14s %s" f.Name (f.Show defaults) f.Doc)
    String.concat "\n" ([ "Settings (JSON config keys; override with --set name=value, method settings with --set method.<name>=value):" ] @ lines)
