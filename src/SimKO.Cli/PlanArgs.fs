/// `simko plan`: a run's GPU memory before any GPU is touched (issue 12). The training settings are
/// the same `--set name=value` as `simko train` (parsed into the same typed spec).
module SimKO.Cli.PlanArgs

open Argu

type PlanArgs =
    | [<Mandatory>] Model of folder: string
    | Set of assignment: string
    | Gpu_Memory_GiB of gib: float
    | Prompt_Tokens of tokens: int
    | World_Size of ranks: int
    | Json
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "an HF model folder (only its config.json is read)."
            | Set _ -> "a training setting, name=value, as in `simko train --set` (dtype, gradient_checkpointing, logits_chunk_tokens, max_tokens_per_micro_batch, optimizer_offload, micro_batch_size, max_new_tokens, prompts_per_step, samples_per_prompt, rollout_url, method, …)."
            | Gpu_Memory_GiB _ -> "memory of the GPU in GiB (default 80)."
            | Prompt_Tokens _ -> "longest prompt in tokens, for micro-batches and the KV cache (default 512)."
            | World_Size _ -> "data-parallel ranks (mpirun -np N; default 1): bytes per rank, with the optimizer replicated and with shard_optimizer (ZeRO-2)."
            | Json -> "print JSON (parameters, components in bytes, total_bytes, gpu_memory_bytes, fits) instead of a table."

type PlanOptions =
    { Spec: RunSpec.TrainSpec
      ModelFolder: string
      GpuMemoryGiB: float
      PromptTokens: int
      /// data-parallel ranks: every figure is per rank.
      WorldSize: int
      Json: bool }

/// The typed options, or every problem at once.
let toOptions (r: ParseResults<PlanArgs>) : Result<PlanOptions, string list> =
    let folder = r.GetResult Model
    let gib = r.GetResult(Gpu_Memory_GiB, defaultValue = 80.0)
    let prompt = r.GetResult(Prompt_Tokens, defaultValue = 512)
    let ranks = r.GetResult(World_Size, defaultValue = 1)
    let own =
        [ if not (gib > 0.0) then sprintf "--gpu-memory-gib must be > 0, got %g" gib
          if prompt < 1 then sprintf "--prompt-tokens must be >= 1, got %d" prompt
          if ranks < 1 then sprintf "--world-size must be >= 1, got %d" ranks ]
    let options = { TrainArgs.Config = None; TrainArgs.Sets = sprintf "model=%s" folder :: r.GetResults Set; TrainArgs.Resume = false }
    match TrainArgs.resolve options, own with
    | Ok spec, [] -> Ok { Spec = spec; ModelFolder = folder; GpuMemoryGiB = gib; PromptTokens = prompt; WorldSize = ranks; Json = r.Contains Json }
    | Ok _, problems -> Error problems
    | Error es, problems -> Error(es @ problems)
