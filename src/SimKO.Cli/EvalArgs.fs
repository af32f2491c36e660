/// `simko eval`: pass@K of a model on a built-in task (and, with the data presets, on benchmarks).
module SimKO.Cli.EvalArgs

open Argu

type EvalArgs =
    | [<Mandatory>] Model of folder: string
    | Task of name: string
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
    | Skip_Bad_Rows
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "HF model folder (config.json, model.safetensors, tokenizer)."
            | Task _ -> "a built-in task (countdown, order, wordmath: its held-out split), a math preset (math500, aime24, aime25, amc23, minerva_math, olympiadbench, gsm8k), bbh (its 27 tasks) or bbh/<task>; repeat for several, reported per benchmark and averaged (default countdown)."
            | Template _ -> "prompt template for math presets: chat (default) or plain."
            | N _ -> "samples per problem (default 256, the paper's; pass@K for K = 1, 2, 4, … n)."
            | Temperature _ -> "sampling temperature (default 0.6, the paper's)."
            | Temperatures _ -> "a temperature sweep (the paper's Table 5), e.g. --temperatures 0.2 0.4 0.6 0.8 1.0."
            | Top_P _ -> "nucleus sampling (default 0.95, the paper's)."
            | Max_New_Tokens _ -> "response budget (default: the task's)."
            | Problems _ -> "evaluate only the first N problems."
            | Seed _ -> "sampling seed (default 2025)."
            | Out _ -> "folder for eval.json, eval.md and pass_at_k.png (default runs/eval)."
            | Device _ -> "cpu (default), cuda or cuda:N."
            | Skip_Bad_Rows -> "skip malformed dataset rows instead of stopping; each is logged and listed in <out>/skipped_rows.txt."

type EvalOptions =
    { Model: string; Tasks: string list; Template: string; N: int; Temperatures: float list; TopP: float; MaxNewTokens: int option
      Problems: int option; Seed: int; Out: string; Device: string; SkipBadRows: bool }

let toOptions (r: ParseResults<EvalArgs>) =
    { Model = r.GetResult Model
      Tasks = (match r.GetResults Task with [] -> [ "countdown" ] | ts -> ts)
      Template = r.GetResult(Template, defaultValue = "chat")
      N = r.GetResult(N, defaultValue = 256)
      Temperatures = (match r.TryGetResult Temperatures with Some ts -> ts | None -> [ r.GetResult(Temperature, defaultValue = 0.6) ])
      TopP = r.GetResult(Top_P, defaultValue = 0.95)
      MaxNewTokens = r.TryGetResult Max_New_Tokens
      Problems = r.TryGetResult Problems
      Seed = r.GetResult(Seed, defaultValue = 2025)
      Out = r.GetResult(Out, defaultValue = "runs/eval")
      Device = r.GetResult(Device, defaultValue = "cpu")
      SkipBadRows = r.Contains Skip_Bad_Rows }
