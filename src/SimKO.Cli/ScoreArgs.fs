/// `simko score`: per-token log-probs of given sequences under a model (to compare numerics with
/// HF transformers or an inference server).
module SimKO.Cli.ScoreArgs

open Argu

type ScoreArgs =
    | [<Mandatory; AltCommandLine("-m")>] Model of folder: string
    | [<Mandatory; AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    | Device of device: string
    | Adapter of folder: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "HF folder (config.json, safetensors, tokenizer files)."
            | Input _ -> "JSONL file, one {\"ids\": [...]} or {\"text\": \"...\"} a line."
            | Output _ -> "where to write {\"ids\": [...], \"logprobs\": [log p(ids[t] | ids[:t]) for t >= 1]} a line (default: standard output)."
            | Device _ -> "cpu (default), cuda or cuda:N."
            | Adapter _ -> "a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on the base folder."

type ScoreOptions = { Model: string; Input: string; Output: string option; Device: RunSpec.Device; Adapter: string option }

let toOptions (r: ParseResults<ScoreArgs>) : Result<ScoreOptions, string list> =
    match RunSpec.parseDevice (r.GetResult(Device, defaultValue = "cpu")) with
    | Ok device -> Ok { Model = r.GetResult Model; Input = r.GetResult Input; Output = r.TryGetResult Output; Device = device; Adapter = r.TryGetResult Adapter }
    | Error e -> Error [ sprintf "--device: %s" e ]
