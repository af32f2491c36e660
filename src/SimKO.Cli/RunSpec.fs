/// The typed run specification: what `train`, `reproduce` and `eval` are asked to do, after the
/// command line and config files are parsed (once, in this project). Methods are SimKO.Math
/// values, every mode is a union case; nothing downstream parses a string again.
module SimKO.Cli.RunSpec

open SimKO.Math

/// Where tensors live.
type Device =
    | Cpu
    /// A CUDA device by index (`cuda` is `cuda:0`).
    | Cuda of index: int

/// Floating-point types of compute and storage.
type DType =
    | Float32
    | BFloat16

/// The built-in tasks: generated problems with a verifier, small enough for CPU training with a
/// character-level model.
type BuiltinTask =
    /// reach a target from three numbers with + − × ÷ (Table 1's math analogue).
    | Countdown
    /// arrange items under ordering constraints (SynLogic-style; Table 2's logic analogue).
    | Order
    /// arithmetic word problems answered in \boxed{} (exercises the math verifier).
    | WordMath
    /// a Python expression in x from input/output examples, verified by running it in the sandbox.
    | Program

/// Where a data file's reference answer comes from.
type AnswerSource =
    /// the answer field as it is (text or number).
    | AnswerField
    /// the last \boxed{} of the field (MATH-style solutions).
    | BoxedInSolution
    /// what follows `#### ` in the field (GSM8K).
    | AfterHashes

/// How a data file's question is built.
type QuestionSource =
    /// the first field present among these names.
    | QuestionFields of string list
    /// a template with field names in braces, e.g. "{Body} {Question}" (SVAMP).
    | QuestionTemplate of string

/// A JSONL or Parquet file of problems.
type DataFile =
    { Path: string
      Question: QuestionSource
      AnswerField: string
      AnswerFrom: AnswerSource
      /// the benchmark's name in reports (default: the file's name).
      Name: string option }

/// What a run trains on.
type TaskSource =
    | Builtin of BuiltinTask
    /// one of the math dataset presets in ../shared/datasets (gsm8k, math500, …).
    | Preset of string
    | File of DataFile
    /// code problems in HumanEval's format, rewarded by running their unit tests in the sandbox
    /// (None: HumanEval itself, from ../shared/datasets).
    | Code of path: string option

/// How prompts of dataset problems are written.
type PromptTemplate =
    /// the model's chat template with the paper's instruction.
    | Chat
    /// the question as it is.
    | Plain

/// The policy a run starts from.
type ModelSource =
    /// a freshly initialised small model sized for a built-in task (CPU scale).
    | TinyModel
    /// an HF folder: config.json, safetensors, tokenizer.
    | HfFolder of string

/// Inference servers the trainer drives.
type ServerKind =
    | Vllm
    | Sglang
    /// `simko serve`.
    | SimkoServer

/// A rollout server and how to talk to it.
type RolloutServer =
    { Url: string
      Kind: ServerKind
      ApiKey: string option
      /// requests in flight at once.
      Concurrency: int
      /// seconds before a request is abandoned (and retried).
      TimeoutSeconds: float
      /// retries on connection errors and 5xx, with backoff.
      Retries: int }

/// Where responses come from.
type RolloutSource =
    /// the in-process sampler on the policy itself.
    | InProcess
    | Server of RolloutServer

/// How the in-process rollout engine batches sequences (issue 19 §3; both sample the same tokens for a seed).
type RolloutBatching =
    /// a sequence joins as soon as a slot is free and leaves when it finishes (Rollout/ContinuousBatcher).
    | Continuous
    /// one left-padded batch decoded until its longest row finishes (Rollout/KvCacheSampler).
    | Static

// MemorySpec, CollectiveBackend and DistributedSpec are declared in SimKO.Math (TrainSettings.fs), what the
// training loop reads, so that the trainer does not depend on this assembly.

/// What `final/` holds for a LoRA run (issue 22).
type LoraExport =
    /// the merged HF folder only (PEFT's merge_and_unload).
    | Merged
    /// the PEFT adapter only (final/adapter/).
    | AdapterOnly
    /// both: final/ merged, final/adapter/ the adapter.
    | Both

/// LoRA adapters on the decoder's projections (PEFT's LoraConfig; issue 22). Rank 0 = full fine-tuning.
type LoraSpec =
    { /// r (0 = off).
      Rank: int
      /// α: the update is scaled by α / r (α / √r with rsLoRA).
      Alpha: float
      /// projections that get an adapter (default all seven).
      TargetModules: string list
      /// dropout on the adapters' input in training.
      Dropout: float
      /// rank-stabilised scaling α / √r.
      UseRslora: bool
      /// a PEFT adapter folder to continue from (None: fresh adapters).
      Adapter: string option
      Export: LoraExport }

// OptimizerSpec: SimKO.Math (TrainSettings.fs).

/// One RL training run.
type TrainSpec =
    { Task: TaskSource
      Template: PromptTemplate
      SkipBadRows: bool
      Model: ModelSource
      Method: Methods.Method
      Steps: int
      PromptsPerStep: int
      SamplesPerPrompt: int
      Temperature: float
      TopP: float
      TopK: int
      MaxNewTokens: int
      MiniBatches: int
      MicroBatchSize: int
      PpoEpochs: int
      Optimizer: OptimizerSpec
      MaxBadSteps: int
      Seed: int
      Device: Device
      /// the compute dtype (fp32 master weights are kept whatever it is).
      DType: DType
      /// the dtype of the final HF export (default: the compute dtype).
      ExportDType: DType
      Memory: MemorySpec
      Distributed: DistributedSpec
      Lora: LoraSpec
      Rollout: RolloutSource
      /// the in-process engine's batching (default continuous).
      RolloutBatching: RolloutBatching
      /// run policy-written code without isolation (only where no sandbox can start; never the default).
      UnsafeNoSandbox: bool
      Out: string
      CheckpointEvery: int
      KeepCheckpoints: int
      Tensorboard: bool }

/// A benchmark of `eval`.
type EvalTask =
    | EvalBuiltin of BuiltinTask
    | EvalPreset of string
    /// all 27 BBH tasks (None) or one.
    | EvalBbh of string option
    | EvalFile of DataFile
    /// HumanEval (or a file in its format), pass@K by unit tests in the sandbox.
    | EvalCode of path: string option

/// One evaluation.
type EvalSpec =
    { Model: string
      /// a PEFT LoRA adapter applied on the model folder (issue 22).
      Adapter: string option
      Tasks: EvalTask list
      Template: PromptTemplate
      SkipBadRows: bool
      Samples: int
      Temperatures: float list
      TopP: float
      MaxNewTokens: int option
      Problems: int option
      Seed: int
      Out: string
      Device: Device
      /// the dtype the model is loaded and sampled in (bfloat16 halves a 7B model's weights and KV cache on a GPU)
      DType: DType
      UnsafeNoSandbox: bool }

/// One trained configuration of a comparison: a key for folders, JSON and finding rows (never the
/// label), a label for reports, its method, and how it changes a study's training spec.
[<NoEquality; NoComparison>]
type Variant =
    { Key: string
      Label: string
      Method: Methods.Method
      /// the setting a sweep gives this variant and its typed value (reports; the sweep plot's x).
      Swept: (string * Settings.Value) option
      /// the variant's change of the study's training spec (a training-setting sweep; otherwise `id`).
      Change: TrainSpec -> TrainSpec }

/// What `reproduce` compares.
type Study =
    /// methods side by side (Table 1 / Table 2).
    | Comparison
    /// SimKO with one part off at a time, and GRPO (Table 3).
    | Ablation
    /// one method setting over values (Figure 7): the setting's name.
    | Sweep of setting: string

/// The paper's experiment at CPU scale.
type ReproduceSpec =
    { Task: BuiltinTask
      Study: Study
      Variants: Variant list
      Quick: bool
      Out: string
      Seeds: int
      Steps: int
      BaseSteps: int
      EvalSamples: int
      EvalProblems: int option
      EvalTemperature: float }

/// Names of the built-in tasks, written once.
let builtinName (t: BuiltinTask) =
    match t with
    | Countdown -> "countdown"
    | Order -> "order"
    | WordMath -> "wordmath"
    | Program -> "program"

let builtins = [ Countdown; Order; WordMath; Program ]

let tryBuiltin (name: string) = builtins |> List.tryFind (fun t -> builtinName t = name)

let dtypeName (d: DType) =
    match d with
    | Float32 -> "float32"
    | BFloat16 -> "bfloat16"

let deviceName (d: Device) =
    match d with
    | Cpu -> "cpu"
    | Cuda i -> sprintf "cuda:%d" i

let serverName (k: ServerKind) =
    match k with
    | Vllm -> "vllm"
    | Sglang -> "sglang"
    | SimkoServer -> "simko"

let rolloutBatchingName (b: RolloutBatching) =
    match b with
    | Continuous -> "continuous"
    | Static -> "static"

let loraExportName (e: LoraExport) =
    match e with
    | Merged -> "merged"
    | AdapterOnly -> "adapter"
    | Both -> "both"

let collectiveName (c: CollectiveBackend) =
    match c with
    | AutoCollective -> "auto"
    | NoCollective -> "none"
    | MpiCollective -> "mpi"
    | NcclCollective -> "nccl"

let answerSourceName (a: AnswerSource) =
    match a with
    | AnswerField -> "answer"
    | BoxedInSolution -> "boxed"
    | AfterHashes -> "hashes"

let templateName (t: PromptTemplate) =
    match t with
    | Chat -> "chat"
    | Plain -> "plain"

/// The benchmark name of a task (reports, folders).
let taskName (t: TaskSource) =
    match t with
    | Builtin b -> builtinName b
    | Preset p -> p
    | File f -> defaultArg f.Name (System.IO.Path.GetFileNameWithoutExtension f.Path)
    | Code None -> "humaneval"
    | Code (Some path) -> System.IO.Path.GetFileName(path).Split('.').[0]

/// Parse a name against a list of cases named by `nameOf`; the error lists the valid names.
let parseName (what: string) (nameOf: 'T -> string) (cases: 'T list) (text: string) : Result<'T, string> =
    match cases |> List.tryFind (fun c -> nameOf c = text) with
    | Some c -> Ok c
    | None -> Error(sprintf "'%s' is not a %s; valid: %s" text what (cases |> List.map nameOf |> String.concat ", "))

/// `cpu`, `cuda` or `cuda:N`.
let parseDevice (text: string) : Result<Device, string> =
    match text.Trim().ToLowerInvariant() with
    | "cpu" -> Ok Cpu
    | "cuda" -> Ok(Cuda 0)
    | s when s.StartsWith "cuda:" ->
        match System.Int32.TryParse(s.Substring 5) with
        | true, i when i >= 0 -> Ok(Cuda i)
        | _ -> Error(sprintf "'%s' is not a device; valid: cpu, cuda, cuda:N" text)
    | _ -> Error(sprintf "'%s' is not a device; valid: cpu, cuda, cuda:N" text)
