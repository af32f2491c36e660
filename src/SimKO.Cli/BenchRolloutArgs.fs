/// `simko bench-rollout`: sampling tokens/s with and without the KV cache, and training-step tokens/s, of one model.
module SimKO.Cli.BenchRolloutArgs

open Argu

type BenchRolloutArgs =
    | Quick
    | Batch of rows: int
    | New_Tokens of count: int
    | Prompt_Length of count: int
    | D_Model of width: int
    | Layers of count: int
    | Vocab of size: int
    | Device of name: string
    | Dtype of name: string
    | Threads of count: int
    | [<AltCommandLine("-o")>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "a fast smoke run (B 16, 32 new tokens, 200-step memory loop) instead of the full one."
            | Batch _ -> "rows sampled together (default 64; 16 with --quick)."
            | New_Tokens _ -> "tokens generated per row (default 128; 32 with --quick)."
            | Prompt_Length _ -> "longest prompt; prompts are 50-100% of it, left-padded (default 32)."
            | D_Model _ -> "hidden size (default 256)."
            | Layers _ -> "decoder layers (default 4)."
            | Vocab _ -> "vocabulary size (default 64, a character-level task's)."
            | Device _ -> "auto, cpu, cuda or cuda:N (default auto)."
            | Dtype _ -> "auto, float32 or bfloat16 (default auto: float32 on CPU, bfloat16 on CUDA)."
            | Threads _ -> "CPU threads for torch (default: torch's choice). On a shared, busy CPU, 1 thread gives steadier numbers."
            | Output _ -> "where to write the JSON results (default runs/bench-rollout.json)."

/// What the host reads.
type BenchRolloutOptions =
    { Quick: bool
      Batch: int
      NewTokens: int
      PromptLength: int
      DModel: int
      Layers: int
      Vocab: int
      Device: string
      Dtype: string
      Threads: int option
      Output: string }

let toOptions (r: ParseResults<BenchRolloutArgs>) =
    let quick = r.Contains Quick
    { Quick = quick
      Batch = r.GetResult(Batch, defaultValue = (if quick then 16 else 64))
      NewTokens = r.GetResult(New_Tokens, defaultValue = (if quick then 32 else 128))
      PromptLength = r.GetResult(Prompt_Length, defaultValue = 32)
      DModel = r.GetResult(D_Model, defaultValue = 256)
      Layers = r.GetResult(Layers, defaultValue = 4)
      Vocab = r.GetResult(Vocab, defaultValue = 64)
      Device = r.GetResult(Device, defaultValue = "auto")
      Dtype = r.GetResult(Dtype, defaultValue = "auto")
      Threads = r.TryGetResult Threads
      Output = r.GetResult(Output, defaultValue = "runs/bench-rollout.json") }
