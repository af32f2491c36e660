/// `simko bench`: where the time and memory go (issue 6). A command, never a test.
module SimKO.Cli.BenchArgs

open Argu

/// Every section of `bench`, in the order they run, with what it measures: `--help` and the unknown-section
/// error read this list, and the host's runners are checked against it (a test).
let sections =
    [ "machine", "the machine and its measured fp32 matmul peak, the yardstick"
      "loss-overhead", "SimKO's time and memory over GRPO at Qwen's vocabulary: LM head + loss, forward + backward"
      "update", "update-step tokens/s and MFU"
      "rollout", "sampling tokens/s with and without the KV cache"
      "rollout-batching", "the training loop's rollout tokens/s, static vs continuous batching, 64 sequences"
      "decode", "decode tokens/s of a d512 x 8 Llama shape at B = 1, 16, 64"
      "grading", "math verifier gradings/s on every preset's answers"
      "code", "code-sandbox gradings/s and the latency isolation adds"
      "reward-fn", "user reward functions, verl compute_score, graded/s through the sandbox"
      "chat-template", "chat-template rendering time per prompt: cold, batched, cached"
      "memory", "whether long sampling and training loops grow resident memory"
      "serve", "simko serve: continuous vs static batching tokens/s, latency, a hostile-request soak"
      "activation-memory", "the update's activation peak with gradient checkpointing off and on"
      "lm-head-memory", "the LM head + SimKO loss peak, fused chunked head vs whole logits"
      "lora", "LoRA r16 vs full fine-tuning: update memory, bytes and seconds per weight sync"
      "collective", "MPI all-reduce bandwidth of 2 ranks and the per-step cost of data parallelism" ]

type BenchArgs =
    | Quick
    | [<AltCommandLine("-o")>] Out of dir: string
    | Only of sections: string list
    | Device of device: string
    | Full
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "small sizes and few repetitions (under a minute), for a smoke run."
            | Out _ -> "folder for bench.json and bench.md (default runs/bench)."
            | Only _ ->
                "run only these sections (default: all): "
                + (sections |> List.map (fun (name, what) -> sprintf "%s: %s" name what) |> String.concat "; ") + "."
            | Device _ -> "cpu (default) or cuda."
            | Full -> "also the slow figures: rollout without the KV cache at 512 new tokens (one repetition; ~15 min on 2 CPU cores)."

type BenchOptions = { Quick: bool; Out: string; Only: string list; Device: string; Full: bool }

let toOptions (r: ParseResults<BenchArgs>) =
    { Quick = r.Contains Quick
      Out = r.GetResult(Out, defaultValue = "runs/bench")
      Only = r.GetResult(Only, defaultValue = [])
      Device = r.GetResult(Device, defaultValue = "cpu")
      Full = r.Contains Full }
