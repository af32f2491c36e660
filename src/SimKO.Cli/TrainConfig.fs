/// The training configuration as a table of named settings (the JSON config file's keys and
/// `--set name=value`), each with a default and a line saying what it is and where the default
/// comes from. A config file and command-line overrides are applied in order, every problem is
/// reported at once, and the result is a typed `RunSpec.TrainSpec`.
module SimKO.Cli.TrainConfig

open System
open System.Globalization
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open SimKO.Math
open SimKO.Cli.RunSpec

/// A spec being assembled: settings whose meaning depends on others (the method and its
/// settings, the task and the data-file fields, the rollout server) wait here until `build`.
type Draft =
    { Spec: TrainSpec
      MethodName: string
      MethodSettings: (string * string) list
      TaskName: string
      DataPath: string option
      QuestionField: string
      QuestionTemplate: string option
      AnswerField: string
      AnswerFrom: AnswerSource
      DataName: string option
      DataFormat: DataFormat
      RewardFnPath: string option
      RewardErrors: RewardErrors
      CodePath: string option
      ExportDType: DType option
      Server: RolloutServer }

/// CPU-scale defaults: the Countdown setting of REPRODUCTION-NOTES (where GRPO's pass@K collapse
/// appears in minutes); the paper's GPU settings are in the settings' docs.
let defaults : TrainSpec =
    { Task = Builtin Countdown
      Template = Chat
      SkipBadRows = false
      Model = TinyModel
      Method = Methods.define Methods.simko
      Steps = 300; PromptsPerStep = 16; SamplesPerPrompt = 8; Temperature = 1.0; TopP = 1.0; TopK = 0; MaxNewTokens = 12
      MiniBatches = 1; MicroBatchSize = 64; PpoEpochs = 1
      Optimizer = { LearningRate = 3e-4; WarmupSteps = 0; Beta1 = 0.9; Beta2 = 0.99; Eps = 1e-8; WeightDecay = 0.0; GradClip = 1.0 }
      MaxBadSteps = 3
      Seed = 0; Device = Cpu; DType = Float32; ExportDType = Float32
      Memory = { GradientCheckpointing = false; LogitsChunkTokens = 0; MaxTokensPerMicroBatch = 0; OptimizerOffload = false }
      Distributed = { Collective = AutoCollective; TimeoutSeconds = 600.0; ChecksumEvery = 10; ShardOptimizer = false }
      Lora = { Rank = 0; Alpha = 16.0; TargetModules = [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ]
               Dropout = 0.0; UseRslora = false; Adapter = None; Export = Both }
      Rollout = InProcess
      RolloutBatching = Continuous
      UnsafeNoSandbox = false
      RewardFn = None
      Out = "runs/train"; CheckpointEvery = 50; KeepCheckpoints = 2; Tensorboard = true }

let private defaultServer = { Url = ""; Kind = Vllm; ApiKey = None; Concurrency = 8; TimeoutSeconds = 600.0; Retries = 3 }

/// The draft of a spec's plain settings (the defaults to apply settings on; a spec written back as a
/// config file). The method's own settings are not in it: `toJson` writes them.
let draftOf (s: TrainSpec) : Draft =
    let dataPath, question, answerField, answerFrom, dataName =
        match s.Task with
        | File f -> Some f.Path, f.Question, f.AnswerField, f.AnswerFrom, f.Name
        | _ -> None, QuestionFields [ "problem"; "question" ], "answer", AnswerField, None
    { Spec = s
      MethodName = Methods.name s.Method
      // overrides of the named method's paper defaults: none (toJson writes every method setting itself)
      MethodSettings = []
      TaskName = (match s.Task with File _ | Code (Some _) -> "countdown" | t -> taskName t)
      CodePath = (match s.Task with Code p -> p | _ -> None)
      DataPath = dataPath
      QuestionField = (match question with QuestionFields fs -> String.concat "|" fs | QuestionTemplate _ -> "problem|question")
      QuestionTemplate = (match question with QuestionTemplate t -> Some t | QuestionFields _ -> None)
      AnswerField = answerField
      AnswerFrom = answerFrom
      DataName = dataName
      DataFormat = (match s.Task with File f -> f.Format | _ -> AutoFormat)
      RewardFnPath = s.RewardFn |> Option.map (fun r -> r.Function)
      RewardErrors = (match s.RewardFn with Some r -> r.Errors | None -> WarnOnError)
      ExportDType = (if s.ExportDType = s.DType then None else Some s.ExportDType)
      Server = (match s.Rollout with Server r -> r | InProcess -> defaultServer) }

/// A training setting: one declaration in the settings engine (`SimKO.Math.Settings`).
type Field = Settings.Setting<Draft>

let private str name doc (get: Draft -> string) set = Settings.text name doc "" get set
let private optStr name doc (get: Draft -> string option) set = Settings.optText name doc "" get set
let private float' name doc (get: TrainSpec -> float) (set: float -> TrainSpec -> TrainSpec) =
    Settings.number name doc "" (fun (d: Draft) -> get d.Spec) (fun x d -> { d with Spec = set x d.Spec })
let private integer name doc (get: TrainSpec -> int) (set: int -> TrainSpec -> TrainSpec) =
    Settings.integer name doc "" (fun (d: Draft) -> get d.Spec) (fun x d -> { d with Spec = set x d.Spec })
let private boolean name doc (get: TrainSpec -> bool) (set: bool -> TrainSpec -> TrainSpec) =
    Settings.flag name doc "" (fun (d: Draft) -> get d.Spec) (fun x d -> { d with Spec = set x d.Spec })
let private choice name doc (nameOf: 'T -> string) (cases: 'T list) (get: Draft -> 'T) (set: 'T -> Draft -> Draft) =
    Settings.choice name doc "" nameOf cases get set
let private opt (f: OptimizerSpec -> OptimizerSpec) (s: TrainSpec) = { s with Optimizer = f s.Optimizer }
let private mem (f: MemorySpec -> MemorySpec) (s: TrainSpec) = { s with Memory = f s.Memory }
let private server (f: RolloutServer -> RolloutServer) (d: Draft) = { d with Server = f d.Server }
let private lora (f: LoraSpec -> LoraSpec) (s: TrainSpec) = { s with Lora = f s.Lora }
let private dist (f: DistributedSpec -> DistributedSpec) (s: TrainSpec) = { s with Distributed = f s.Distributed }

/// Every setting, in the order `--help` lists them.
let fields : Field list =
    [ str "task" (sprintf "built-in task (%s), math dataset preset (%s) or humaneval (the last two need model = an HF folder)" (builtins |> List.map builtinName |> String.concat ", ") (String.concat ", " SimKO.Data.Math.Datasets.Names))
          (fun d -> d.TaskName) (fun v d -> { d with TaskName = v })
      optStr "data_path" "a JSONL or Parquet (.parquet) file of math problems to train on instead of task (needs model = an HF folder)" (fun d -> d.DataPath) (fun v d -> { d with DataPath = v })
      str "question_field" "data_path: question field(s), '|' between alternatives" (fun d -> d.QuestionField) (fun v d -> { d with QuestionField = v })
      optStr "question_template" "data_path: the question from several fields, names in braces, e.g. \"{Body} {Question}\" (instead of question_field)" (fun d -> d.QuestionTemplate) (fun v d -> { d with QuestionTemplate = v })
      str "answer_field" "data_path: the field holding the answer (text or number)" (fun d -> d.AnswerField) (fun v d -> { d with AnswerField = v })
      choice "answer_from" "data_path: answer (the field as is), boxed (last \\boxed{} of the field), hashes (after '#### ')" answerSourceName [ AnswerField; BoxedInSolution; AfterHashes ]
          (fun d -> d.AnswerFrom) (fun v d -> { d with AnswerFrom = v })
      optStr "data_name" "data_path: the benchmark's name in reports (default: the file's name)" (fun d -> d.DataName) (fun v d -> { d with DataName = v })
      optStr "code_path" "a code dataset in HumanEval's format (JSONL or .jsonl.gz: task_id, prompt, test, entry_point) to train on, rewarded by its unit tests in the sandbox (needs model = an HF folder)"
          (fun d -> d.CodePath) (fun v d -> { d with CodePath = v })
      boolean "unsafe_no_sandbox" "run policy-written code WITHOUT isolation (limits and timeouts only); only where no sandbox can start"
          (fun s -> s.UnsafeNoSandbox) (fun v s -> { s with UnsafeNoSandbox = v })
      boolean "skip_bad_rows" "data_path and dataset presets: skip malformed rows, listing each in the log and <out>/skipped_rows.txt, instead of stopping" (fun s -> s.SkipBadRows) (fun v s -> { s with SkipBadRows = v })
      choice "data_format" "data_path: auto (verl's format when the file has its prompt and reward_model columns, said in the log), verl, or flat (the named fields)" dataFormatName [ AutoFormat; VerlFormat; FlatFormat ]
          (fun d -> d.DataFormat) (fun v d -> { d with DataFormat = v })
      optStr "reward_fn" "a Python reward function with verl's signature, path.py (compute_score) or path.py:name, run in the sandbox; it replaces the built-in grader of dataset tasks (presets, data_path); dict extras become reward/<key> metrics"
          (fun d -> d.RewardFnPath) (fun v d -> { d with RewardFnPath = v })
      choice "reward_errors" "reward_fn: what a sample whose function raises, times out or returns a non-number does: warn (reward 0 and a warning naming file, line and sample) or fail (the run stops)" rewardErrorsName [ WarnOnError; FailOnError ]
          (fun d -> d.RewardErrors) (fun v d -> { d with RewardErrors = v })
      choice "prompt_template" "for dataset presets: chat (the model's chat template + the paper's instruction) or plain" templateName [ Chat; Plain ]
          (fun d -> d.Spec.Template) (fun v d -> { d with Spec = { d.Spec with Template = v } })
      str "model" "an HF folder (config.json + safetensors + the task's tokenizer, e.g. runs/reproduce/base), or 'tiny' for a freshly initialised small model"
          (fun d -> match d.Spec.Model with TinyModel -> "tiny" | HfFolder p -> p)
          (fun v d -> { d with Spec = { d.Spec with Model = (if v = "tiny" then TinyModel else HfFolder v) } })
      str "method" "the method trained (SPEC §2–4; the list below)" (fun d -> d.MethodName) (fun v d -> { d with MethodName = v })
      integer "steps" "training steps (paper: ~ a few hundred; notes: 300 for Countdown)" (fun s -> s.Steps) (fun v s -> { s with Steps = v })
      integer "prompts_per_step" "prompts sampled per step (paper 1024; notes 16)" (fun s -> s.PromptsPerStep) (fun v s -> { s with PromptsPerStep = v })
      integer "samples_per_prompt" "responses per prompt, the group size G (paper 8)" (fun s -> s.SamplesPerPrompt) (fun v s -> { s with SamplesPerPrompt = v })
      float' "temperature" "rollout sampling temperature (paper 1.0)" (fun s -> s.Temperature) (fun v s -> { s with Temperature = v })
      float' "top_p" "rollout nucleus sampling (1 = off)" (fun s -> s.TopP) (fun v s -> { s with TopP = v })
      integer "top_k" "rollout top-k sampling (0 = off)" (fun s -> s.TopK) (fun v s -> { s with TopK = v })
      integer "max_new_tokens" "longest response (paper 3072; 12 for Countdown)" (fun s -> s.MaxNewTokens) (fun v s -> { s with MaxNewTokens = v })
      integer "mini_batches" "PPO mini-batches per step (paper 4: 1024 prompts / 256)" (fun s -> s.MiniBatches) (fun v s -> { s with MiniBatches = v })
      integer "micro_batch_size" "responses per forward/backward (gradient accumulation; does not change the gradient)" (fun s -> s.MicroBatchSize) (fun v s -> { s with MicroBatchSize = v })
      integer "max_tokens_per_micro_batch" "fill micro-batches up to this many tokens, rows sorted by length (verl's dynamic batch size; 0 = micro_batch_size rows)"
          (fun s -> s.Memory.MaxTokensPerMicroBatch) (fun v -> mem (fun m -> { m with MaxTokensPerMicroBatch = v }))
      integer "ppo_epochs" "passes over each step's rollouts (paper 1)" (fun s -> s.PpoEpochs) (fun v s -> { s with PpoEpochs = v })
      float' "lr" "AdamW learning rate, constant after warm-up (paper 1e-6; notes 3e-4 for a 0.4M model)" (fun s -> s.Optimizer.LearningRate) (fun v -> opt (fun o -> { o with LearningRate = v }))
      integer "warmup_steps" "linear learning-rate warm-up steps" (fun s -> s.Optimizer.WarmupSteps) (fun v -> opt (fun o -> { o with WarmupSteps = v }))
      float' "beta1" "AdamW β1" (fun s -> s.Optimizer.Beta1) (fun v -> opt (fun o -> { o with Beta1 = v }))
      float' "beta2" "AdamW β2 (notes 0.99)" (fun s -> s.Optimizer.Beta2) (fun v -> opt (fun o -> { o with Beta2 = v }))
      float' "eps" "AdamW ε, added to √v̂ (torch and verl 1e-8; larger keeps updates of near-zero gradients small)" (fun s -> s.Optimizer.Eps) (fun v -> opt (fun o -> { o with Eps = v }))
      float' "weight_decay" "AdamW decoupled weight decay" (fun s -> s.Optimizer.WeightDecay) (fun v -> opt (fun o -> { o with WeightDecay = v }))
      float' "grad_clip" "gradient-norm clip (paper 1.0)" (fun s -> s.Optimizer.GradClip) (fun v -> opt (fun o -> { o with GradClip = v }))
      integer "max_bad_steps" "a NaN/Inf loss or gradient skips the update; this many skipped updates stop the run" (fun s -> s.MaxBadSteps) (fun v s -> { s with MaxBadSteps = v })
      integer "seed" "seed of prompt order, sampling and initialisation" (fun s -> s.Seed) (fun v s -> { s with Seed = v })
      Settings.parsed "device" "cpu, cuda or cuda:N" "" "cpu, cuda or cuda:N" parseDevice deviceName (fun d -> d.Spec.Device) (fun x d -> { d with Spec = { d.Spec with Device = x } })
      choice "dtype" "compute dtype: float32, or bfloat16 (CUDA; on the CPU it runs, ~100x slower); master weights, moments and gradient sums stay float32" dtypeName [ Float32; BFloat16 ]
          (fun d -> d.Spec.DType) (fun v d -> { d with Spec = { d.Spec with DType = v } })
      Settings.parsed "export_dtype" "dtype of the final HF export (default: the compute dtype)" "" "float32, bfloat16 or empty"
          (fun v -> if v = "" then Ok None else parseName "dtype" dtypeName [ Float32; BFloat16 ] v |> Result.map Some)
          (function Some x -> dtypeName x | None -> "") (fun d -> d.ExportDType) (fun x d -> { d with ExportDType = x })
      boolean "gradient_checkpointing" "recompute each decoder layer in backward, keeping only its input (activation memory ÷ ~layers)"
          (fun s -> s.Memory.GradientCheckpointing) (fun v -> mem (fun m -> { m with GradientCheckpointing = v }))
      integer "logits_chunk_tokens" "tokens per chunk of the fused LM head and token statistics, recomputed in backward (0 = whole micro-batch logits)"
          (fun s -> s.Memory.LogitsChunkTokens) (fun v -> mem (fun m -> { m with LogitsChunkTokens = v }))
      boolean "optimizer_offload" "keep fp32 master weights and AdamW moments in host memory and update there (verl's optimizer offload)"
          (fun s -> s.Memory.OptimizerOffload) (fun v -> mem (fun m -> { m with OptimizerOffload = v }))
      // data parallelism over mpirun/srun ranks (issue 21)
      choice "collective" "auto (NCCL on CUDA, MPI on the CPU, none outside mpirun/srun), none, mpi or nccl" collectiveName [ AutoCollective; NoCollective; MpiCollective; NcclCollective ]
          (fun d -> d.Spec.Distributed.Collective) (fun v d -> { d with Spec = dist (fun x -> { x with Collective = v }) d.Spec })
      float' "collective_timeout_s" "seconds a collective waits for the other ranks before the run stops naming the missing rank and step" (fun s -> s.Distributed.TimeoutSeconds) (fun v -> dist (fun x -> { x with TimeoutSeconds = v }))
      integer "checksum_every" "steps between cross-rank weight checksums (0 = never)" (fun s -> s.Distributed.ChecksumEvery) (fun v -> dist (fun x -> { x with ChecksumEvery = v }))
      boolean "shard_optimizer" "ZeRO-2: each rank keeps the fp32 master weights, gradient sums and AdamW moments of 1/N of the parameters (gradients reduce-scattered, weights all-gathered)"
          (fun s -> s.Distributed.ShardOptimizer) (fun v -> dist (fun x -> { x with ShardOptimizer = v }))
      // LoRA (issue 22; PEFT's LoraConfig, verl's lora_rank / lora_alpha / target_modules)
      integer "lora_rank" "LoRA rank r on the decoder's projections; the base weights are frozen (0 = full fine-tuning)" (fun s -> s.Lora.Rank) (fun v -> lora (fun l -> { l with Rank = v }))
      float' "lora_alpha" "LoRA α: the adapters' update is scaled by α / r (verl 16; PEFT 8)" (fun s -> s.Lora.Alpha) (fun v -> lora (fun l -> { l with Alpha = v }))
      str "lora_target_modules" "projections that get an adapter, comma-separated (default all seven)" (fun d -> String.concat "," d.Spec.Lora.TargetModules)
          (fun v d -> { d with Spec = lora (fun l -> { l with TargetModules = v.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray }) d.Spec })
      float' "lora_dropout" "dropout on the adapters' input in training (PEFT 0)" (fun s -> s.Lora.Dropout) (fun v -> lora (fun l -> { l with Dropout = v }))
      boolean "use_rslora" "rank-stabilised LoRA: scale α / √r instead of α / r" (fun s -> s.Lora.UseRslora) (fun v -> lora (fun l -> { l with UseRslora = v }))
      optStr "adapter" "a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) to continue training from; sets the LoRA settings from its config"
          (fun d -> d.Spec.Lora.Adapter) (fun v d -> { d with Spec = lora (fun l -> { l with Adapter = v }) d.Spec })
      choice "export" "LoRA runs: final/ merged (HF folder), adapter (final/adapter/, PEFT) or both" loraExportName [ Merged; AdapterOnly; Both ]
          (fun d -> d.Spec.Lora.Export) (fun v d -> { d with Spec = lora (fun l -> { l with Export = v }) d.Spec })
      choice "rollout_batching" "the in-process rollout engine: continuous (a finished sequence frees its slot at once) or static (one padded batch)"
          rolloutBatchingName [ Continuous; Static ] (fun d -> d.Spec.RolloutBatching) (fun v d -> { d with Spec = { d.Spec with RolloutBatching = v } })
      str "rollout_url" "an inference server's base URL for rollouts, e.g. http://127.0.0.1:8000 (empty = the in-process sampler)"
          (fun d -> d.Server.Url) (fun v -> server (fun r -> { r with Url = v }))
      choice "rollout_server" "the server at rollout_url: vllm, sglang or simko (simko serve)" serverName [ Vllm; Sglang; SimkoServer ]
          (fun d -> d.Server.Kind) (fun v -> server (fun r -> { r with Kind = v }))
      optStr "rollout_api_key" "API key of the rollout server (sent as a bearer token)" (fun d -> d.Server.ApiKey) (fun v -> server (fun r -> { r with ApiKey = v }))
      Settings.integer "rollout_concurrency" "rollout requests in flight at once" "" (fun d -> d.Server.Concurrency) (fun x -> server (fun r -> { r with Concurrency = x }))
      Settings.number "rollout_timeout_s" "seconds before a rollout request is abandoned and retried" "" (fun d -> d.Server.TimeoutSeconds) (fun x -> server (fun r -> { r with TimeoutSeconds = x }))
      Settings.integer "rollout_retries" "retries of a rollout request on connection errors and 5xx, with backoff" "" (fun d -> d.Server.Retries) (fun x -> server (fun r -> { r with Retries = x }))
      str "out" "run folder: metrics.jsonl, tensorboard/, checkpoints/, final/ (HF export)" (fun d -> d.Spec.Out) (fun v d -> { d with Spec = { d.Spec with Out = v } })
      integer "checkpoint_every" "steps between checkpoints (one is always written at the end)" (fun s -> s.CheckpointEvery) (fun v s -> { s with CheckpointEvery = v })
      integer "keep_checkpoints" "complete checkpoints kept" (fun s -> s.KeepCheckpoints) (fun v s -> { s with KeepCheckpoints = v })
      boolean "tensorboard" "write TensorBoard event files" (fun s -> s.Tensorboard) (fun v s -> { s with Tensorboard = v }) ]

/// Method settings are `method.<name>` in `--set` and the keys of `"method_settings"` in a config file.
let private methodSettingPrefix = "method."

let private setOne (d: Draft) (key: string) (value: string) : Result<Draft, string> =
    if key.StartsWith methodSettingPrefix then
        Ok { d with MethodSettings = d.MethodSettings @ [ key.Substring methodSettingPrefix.Length, value ] }
    else
        match fields |> List.tryFind (fun f -> f.Name = key) with
        | Some _ -> Settings.setText fields key value d
        | None -> Error(sprintf "unknown setting '%s'; valid: %s, method.<name>" key (fields |> List.map _.Name |> String.concat ", "))

/// Apply (key, value) pairs in order: the draft with every valid pair applied, and the problems.
let applyAll (pairs: (string * string) list) (d: Draft) : Draft * string list =
    let folder (d, errors) (k, v) =
        match setOne d k v with
        | Ok d -> d, errors
        | Error e -> d, errors @ [ e ]
    List.fold folder (d, []) pairs

/// (key, value) pairs of a JSON config file; `method_settings` may be an object of method settings.
let readFile (path: string) : Result<(string * string) list, string list> =
    try
        use doc = JsonDocument.Parse(File.ReadAllText path)
        if doc.RootElement.ValueKind <> JsonValueKind.Object then Error [ sprintf "%s: the config must be a JSON object" path ]
        else
            // typed JSON (numbers, booleans, null) and the old string-valued files read the same:
            // each value goes through its setting's one parser
            let problems = ResizeArray<string>()
            let text (key: string) (e: JsonElement) =
                match e.ValueKind with
                | JsonValueKind.String -> e.GetString()
                | JsonValueKind.Null -> ""
                | JsonValueKind.Number | JsonValueKind.True | JsonValueKind.False -> e.GetRawText()
                | _ ->
                    problems.Add(sprintf "%s: %s: expected a number, true/false, a string or null, got %s" path key (e.GetRawText()))
                    ""
            let pairs =
                [ for p in doc.RootElement.EnumerateObject() do
                    if p.Name = "method_settings" && p.Value.ValueKind = JsonValueKind.Object then
                        for s in p.Value.EnumerateObject() do
                            yield methodSettingPrefix + s.Name, text ("method_settings." + s.Name) s.Value
                    else yield p.Name, text p.Name p.Value ]
            if problems.Count = 0 then Ok pairs else Error(List.ofSeq problems)
    with
    | :? JsonException as e -> Error [ sprintf "%s: not valid JSON (%s)" path e.Message ]
    | :? IOException as e -> Error [ sprintf "%s: cannot read (%s)" path e.Message ]

let private checks (s: TrainSpec) =
    let o = s.Optimizer
    [ if s.Steps < 1 then yield sprintf "steps must be >= 1, got %d" s.Steps
      if s.PromptsPerStep < 1 then yield sprintf "prompts_per_step must be >= 1, got %d" s.PromptsPerStep
      if s.SamplesPerPrompt < 1 then yield sprintf "samples_per_prompt must be >= 1, got %d" s.SamplesPerPrompt
      if not (s.Temperature > 0.0) then yield sprintf "temperature must be > 0, got %g" s.Temperature
      if not (s.TopP > 0.0 && s.TopP <= 1.0) then yield sprintf "top_p must be in (0, 1], got %g" s.TopP
      if s.TopK < 0 then yield sprintf "top_k must be >= 0 (0 = off), got %d" s.TopK
      if s.MaxNewTokens < 1 then yield sprintf "max_new_tokens must be >= 1, got %d" s.MaxNewTokens
      if s.MiniBatches < 1 || s.PromptsPerStep % max 1 s.MiniBatches <> 0 then
          yield sprintf "mini_batches = %d must divide prompts_per_step = %d (mini-batches hold whole groups)" s.MiniBatches s.PromptsPerStep
      if s.MicroBatchSize < 1 then yield sprintf "micro_batch_size must be >= 1, got %d" s.MicroBatchSize
      if s.Memory.MaxTokensPerMicroBatch < 0 then yield sprintf "max_tokens_per_micro_batch must be >= 0 (0 = micro_batch_size rows), got %d" s.Memory.MaxTokensPerMicroBatch
      if s.Memory.LogitsChunkTokens < 0 then yield sprintf "logits_chunk_tokens must be >= 0 (0 = unchunked), got %d" s.Memory.LogitsChunkTokens
      if s.PpoEpochs < 1 then yield sprintf "ppo_epochs must be >= 1, got %d" s.PpoEpochs
      if not (o.LearningRate > 0.0) then yield sprintf "lr must be > 0, got %g" o.LearningRate
      if o.WarmupSteps < 0 then yield sprintf "warmup_steps must be >= 0, got %d" o.WarmupSteps
      if not (o.Beta1 >= 0.0 && o.Beta1 < 1.0) then yield sprintf "beta1 must be in [0, 1), got %g" o.Beta1
      if not (o.Beta2 >= 0.0 && o.Beta2 < 1.0) then yield sprintf "beta2 must be in [0, 1), got %g" o.Beta2
      if not (o.Eps > 0.0) then yield sprintf "eps must be > 0, got %g" o.Eps
      if not (o.WeightDecay >= 0.0) then yield sprintf "weight_decay must be >= 0, got %g" o.WeightDecay
      if not (o.GradClip > 0.0) then yield sprintf "grad_clip must be > 0, got %g" o.GradClip
      if s.MaxBadSteps < 1 then yield sprintf "max_bad_steps must be >= 1, got %d" s.MaxBadSteps
      if s.CheckpointEvery < 1 then yield sprintf "checkpoint_every must be >= 1, got %d" s.CheckpointEvery
      if s.KeepCheckpoints < 1 then yield sprintf "keep_checkpoints must be >= 1, got %d" s.KeepCheckpoints
      if not (s.Distributed.TimeoutSeconds > 0.0) then yield sprintf "collective_timeout_s must be > 0, got %g" s.Distributed.TimeoutSeconds
      if s.Distributed.ChecksumEvery < 0 then yield sprintf "checksum_every must be >= 0 (0 = never), got %d" s.Distributed.ChecksumEvery
      let l = s.Lora
      let projections = [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ]
      if l.Rank < 0 then yield sprintf "lora_rank must be >= 0 (0 = off), got %d" l.Rank
      if not (l.Alpha > 0.0) then yield sprintf "lora_alpha must be > 0, got %g" l.Alpha
      if not (l.Dropout >= 0.0 && l.Dropout < 1.0) then yield sprintf "lora_dropout must be in [0, 1), got %g" l.Dropout
      if l.TargetModules.IsEmpty then yield sprintf "lora_target_modules is empty; name some of %s" (String.concat "," projections)
      for m in l.TargetModules do
          if not (List.contains m projections) then yield sprintf "lora_target_modules: '%s' is not one of %s" m (String.concat ", " projections)
      if l.Rank > 0 && l.Dropout > 0.0 && s.Memory.GradientCheckpointing then
          yield "lora_dropout > 0 with gradient_checkpointing: the recomputed layer would draw other dropout masks; set one of them off"
      match s.Rollout with
      | InProcess -> ()
      | Server r ->
          match Uri.TryCreate(r.Url, UriKind.Absolute) with
          | true, u when u.Scheme = "http" || u.Scheme = "https" -> ()
          | _ -> yield sprintf "rollout_url must be an http:// or https:// URL, got '%s'" r.Url
          if r.Concurrency < 1 then yield sprintf "rollout_concurrency must be >= 1, got %d" r.Concurrency
          if not (r.TimeoutSeconds > 0.0) then yield sprintf "rollout_timeout_s must be > 0, got %g" r.TimeoutSeconds
          if r.Retries < 0 then yield sprintf "rollout_retries must be >= 0, got %d" r.Retries ]

/// The typed spec of a draft, or every problem at once (each saying how to fix it).
let buildWith (methods: Methods.Method list) (d: Draft) : Result<TrainSpec, string list> =
    let taskResult =
        match d.DataPath, d.CodePath with
        | Some _, Some _ -> Error "data_path and code_path are two datasets; give one"
        | None, Some path -> Ok(Code(Some path))
        | Some path, None ->
            let question =
                match d.QuestionTemplate with
                | Some t -> QuestionTemplate t
                | None -> QuestionFields(d.QuestionField.Split('|', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray)
            Ok(File { Path = path; Question = question; AnswerField = d.AnswerField; AnswerFrom = d.AnswerFrom; Name = d.DataName; Format = d.DataFormat })
        | None, None ->
            match tryBuiltin d.TaskName with
            | Some b -> Ok(Builtin b)
            | None when d.TaskName = "humaneval" -> Ok(Code None)
            | None when List.contains d.TaskName (List.ofSeq SimKO.Data.Math.Datasets.Names) -> Ok(Preset d.TaskName)
            | None ->
                Error(sprintf "task: '%s' is neither a built-in task (%s) nor a dataset preset (%s); or set data_path to a file"
                          d.TaskName (builtins |> List.map builtinName |> String.concat ", ") (String.concat ", " SimKO.Data.Math.Datasets.Names))
    let methodResult =
        Methods.byNameIn methods d.MethodName
        |> Result.mapError (fun e -> [ sprintf "method: %s" e ])
        |> Result.bind (fun m -> MethodSettings.apply d.MethodSettings m |> Result.mapError (List.map (sprintf "method settings: %s")))
    let rollout = if d.Server.Url = "" then InProcess else Server d.Server
    let spec =
        { d.Spec with
            Task = (match taskResult with Ok t -> t | Error _ -> d.Spec.Task)
            Method = (match methodResult with Ok m -> m | Error _ -> d.Spec.Method)
            ExportDType = defaultArg d.ExportDType d.Spec.DType
            Rollout = rollout
            RewardFn = d.RewardFnPath |> Option.map (fun p -> { Function = p; Errors = d.RewardErrors }) }
    let problems =
        [ match taskResult with Error e -> yield e | Ok _ -> ()
          match methodResult with
          | Error es -> yield! es
          | Ok m -> yield! Methods.validate spec.SamplesPerPrompt m |> List.map (sprintf "method settings: %s")
          match spec.Task, spec.Model with
          | (Preset _ | File _ | Code _), TinyModel -> yield sprintf "model: %s is a dataset for a general model; set model to an HF folder (config.json, safetensors, tokenizer.json)" (taskName spec.Task)
          | _ -> ()
          if d.QuestionTemplate.IsSome && d.DataPath.IsNone then yield "question_template applies to data_path; set data_path too"
          if d.DataFormat <> AutoFormat && d.DataPath.IsNone then yield "data_format applies to data_path; set data_path too"
          match spec.RewardFn, spec.Task with
          | Some r, (Builtin _ | Code _) -> yield sprintf "reward_fn (%s) scores dataset tasks (presets, data_path); %s has its own verifier" r.Function (taskName spec.Task)
          | _ -> ()
          match d.QuestionTemplate with
          | Some t ->
              match (try Ok(SimKO.Data.Math.QuestionTemplate.Parse t) with :? SimKO.Data.Math.DatasetException as e -> Error e.Message) with
              | Error e -> yield sprintf "question_template: %s" e
              | Ok _ -> ()
          | None -> ()
          yield! checks spec ]
    if problems.IsEmpty then Ok spec else Error problems

/// `buildWith` the shipped methods (`Methods.all`).
let build (d: Draft) = buildWith Methods.all d

/// The draft of the defaults, for applying settings on top.
let defaultDraft = draftOf defaults

/// Apply (key, value) pairs to the defaults and build the spec; every problem at once.
let resolvePairsWith (methods: Methods.Method list) (pairs: (string * string) list) : Result<TrainSpec, string list> =
    match applyAll pairs defaultDraft with
    | d, [] -> buildWith methods d
    | d, errors -> Error(errors @ (match buildWith methods d with Error es -> es | Ok _ -> []))

/// `resolvePairsWith` the shipped methods (`Methods.all`).
let resolvePairs pairs = resolvePairsWith Methods.all pairs

/// A spec with one training setting changed to a typed value (a sweep's variant), checked; the
/// method stays the spec's own.
let withSetting (field: Field) (value: Settings.Value) (spec: TrainSpec) : Result<TrainSpec, string list> =
    buildWith [ spec.Method ] (field.Set value (draftOf spec))

/// Every problem of a typed spec (the checks `build` makes), at once.
let validate (s: TrainSpec) : string list =
    (Methods.validate s.SamplesPerPrompt s.Method |> List.map (sprintf "method settings: %s")) @ checks s

/// The training spec of one run of a `reproduce` study, by record update of the CPU-scale defaults:
/// a built-in task, the study's base model folder, the variant's method, then the variant's change.
let studyRun (task: BuiltinTask) (maxNewTokens: int) (steps: int) (outDir: string) (seed: int) (quick: bool) (baseModel: string) (v: Variant) : Result<TrainSpec, string list> =
    let spec =
        v.Change
            { defaults with
                Task = Builtin task; Steps = steps; Seed = seed; Out = outDir; MaxNewTokens = maxNewTokens
                CheckpointEvery = max 1 steps; KeepCheckpoints = 1; Tensorboard = not quick; Model = HfFolder baseModel
                Method = v.Method }
    match validate spec with
    | [] -> Ok spec
    | problems -> Error problems

/// A setting's value as typed JSON: numbers as numbers, flags as booleans, "off" as null.
let jsonOf (v: Settings.Value) : JsonNode =
    match v with
    | Settings.Num x -> JsonValue.Create x
    | Settings.Int i -> JsonValue.Create i
    | Settings.Bool b -> JsonValue.Create b
    | Settings.Str t -> JsonValue.Create t
    | Settings.Off -> null

/// The spec as a config file (written into every run folder and checkpoint; `--config` reads it back),
/// typed: `"steps": 300`, `"tensorboard": true`.
let toJson (s: TrainSpec) : string =
    let d = draftOf s
    let o = JsonObject()
    for f in fields do o[f.Name] <- jsonOf (f.Get d)
    let ms = JsonObject()
    for k, v in MethodSettings.typedValues s.Method do ms[k] <- jsonOf v
    o["method_settings"] <- ms
    o.ToJsonString(JsonSerializerOptions(WriteIndented = true))

/// The table `--help` prints: name, default, what it is and where the default comes from.
let helpTextWith (methods: Methods.Method list) =
    let lines = fields |> List.map (fun f -> sprintf "  %-27s %-14s %s" f.Name (Settings.show (f.Get defaultDraft)) f.Doc)
    let methodLines =
        [ for m in methods do
            yield sprintf "  %-27s %s" m.Name m.Doc
            for name, value in MethodSettings.ownValues m do
                let s = m.Ops.OwnSettings |> List.find (fun s -> s.Name = name)
                yield sprintf "    method.%-20s %-14s %s%s" name value s.Doc (if s.Source = "" then "" else sprintf " (%s)" s.Source) ]
    let commonLines =
        [ for s in Methods.commonSettings ->
            sprintf "    method.%-20s %-14s %s%s" s.Name (Settings.show (s.Get Methods.commonDefaults)) s.Doc (if s.Source = "" then "" else sprintf " (%s)" s.Source) ]
    String.concat "\n"
        ([ "Settings (JSON config keys; override with --set name=value, method settings with --set method.<name>=value):" ] @ lines
         @ [ ""; "Methods (method=<name>) and their own settings (default, what it is, source):" ] @ methodLines
         @ [ ""; "Settings of every method:" ] @ commonLines)

/// The help of the shipped methods (`Methods.all`).
let helpText () = helpTextWith Methods.all

/// What the training loop reads of a spec (SimKO.Math.TrainLoop), with the whole configuration as
/// config.json text for the run folder, the checkpoints and the resume comparison.
let trainSettings (s: TrainSpec) : TrainLoop.TrainSettings =
    { Method = s.Method
      Steps = s.Steps
      PromptsPerStep = s.PromptsPerStep
      SamplesPerPrompt = s.SamplesPerPrompt
      Temperature = s.Temperature
      TopP = s.TopP
      TopK = s.TopK
      MaxNewTokens = s.MaxNewTokens
      MiniBatches = s.MiniBatches
      MicroBatchSize = s.MicroBatchSize
      PpoEpochs = s.PpoEpochs
      Optimizer = s.Optimizer
      MaxBadSteps = s.MaxBadSteps
      Seed = s.Seed
      Memory = s.Memory
      Distributed = s.Distributed
      Out = s.Out
      CheckpointEvery = s.CheckpointEvery
      KeepCheckpoints = s.KeepCheckpoints
      Tensorboard = s.Tensorboard
      ConfigJson = toJson s
      DefaultConfigJson = toJson defaults }
