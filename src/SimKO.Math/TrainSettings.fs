/// What the training loop reads (issue 20 item 4), declared below the command line so that
/// `SimKO.Host.Training` does not depend on the CLI assembly. The sub-records are parts of the CLI's
/// `RunSpec.TrainSpec` as well: each of their settings is declared once, in `SimKO.Cli.TrainConfig`'s
/// table (name, doc, default, parser); `TrainConfig.trainSettings` builds a `TrainLoop.TrainSettings`
/// from a spec. Plain data: no I/O.
namespace SimKO.Math

/// Memory and precision of the update (SPEC §8; issue 12).
type MemorySpec =
    { /// recompute each decoder layer in backward, keeping only layer inputs.
      GradientCheckpointing: bool
      /// tokens per chunk of the fused LM head and token statistics (0: whole micro-batches).
      LogitsChunkTokens: int
      /// micro-batches filled up to this many tokens (0: `micro_batch_size` rows each).
      MaxTokensPerMicroBatch: int
      /// keep fp32 master weights and AdamW moments in host memory and update there.
      OptimizerOffload: bool }

/// The collective library that joins the ranks of a multi-process run (issue 21).
type CollectiveBackend =
    /// NCCL on CUDA, MPI on the CPU, none when not launched by mpirun/srun.
    | AutoCollective
    /// one process.
    | NoCollective
    /// Open MPI (libmpi.so.40), CPU tensors.
    | MpiCollective
    /// NCCL (libnccl.so.2), CUDA tensors; its unique id travels over MPI.
    | NcclCollective

/// Data parallelism over the ranks of `mpirun`/`srun` (issue 21).
type DistributedSpec =
    { Collective: CollectiveBackend
      /// seconds a collective waits for the other ranks before the run stops, naming the missing rank and the step.
      TimeoutSeconds: float
      /// steps between weight checksums across ranks (0 = never).
      ChecksumEvery: int
      /// ZeRO-2: each rank keeps the fp32 master weights, gradient sums and AdamW moments of a 1/N slice
      /// of the flat parameter vector; gradients are reduce-scattered to their owners and the updated
      /// weights all-gathered.
      ShardOptimizer: bool }

/// AdamW and its schedule.
type OptimizerSpec =
    { LearningRate: float
      WarmupSteps: int
      Beta1: float
      Beta2: float
      /// AdamW's ε, added to √v̂ (torch, verl: 1e-8).
      Eps: float
      WeightDecay: float
      GradClip: float }

/// The training loop's settings in a module of their own, so that their field names (`Steps`, `Seed`,
/// `Out`, …) do not shadow the CLI's `TrainSpec` fields in files that open `SimKO.Math`.
module TrainLoop =

    /// One run of the training loop (SPEC §2, §5–8): what `SimKO.Host.Training.Trainer` reads, and
    /// nothing of how the run was assembled (task, model, device, rollout source, sandbox).
    type TrainSettings =
        { Method: Methods.Method
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
          /// the run stops once this many updates were skipped for a NaN/Inf loss or gradient.
          MaxBadSteps: int
          Seed: int
          Memory: MemorySpec
          Distributed: DistributedSpec
          /// the folder the run writes: config.json, metrics, checkpoints/, final/.
          Out: string
          CheckpointEvery: int
          KeepCheckpoints: int
          Tensorboard: bool
          /// the whole run configuration as config.json text (every setting, typed): written to the run
          /// folder and into each checkpoint, and compared setting by setting on resume.
          ConfigJson: string
          /// the configuration of the default settings, same layout: a setting a checkpoint predates
          /// (absent from its config) matches on resume when this run keeps its default.
          DefaultConfigJson: string }
