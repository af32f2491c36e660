/// `simko tokenize`: encode JSONL texts with a model folder's tokenizer, to compare with other implementations.
module SimKO.Cli.TokenizeArgs

open Argu

type TokenizeArgs =
    | [<Mandatory; AltCommandLine("-t")>] Tokenizer of folder: string
    | [<AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Tokenizer _ -> "folder with tokenizer.json + tokenizer_config.json (or char_tokenizer.json)."
            | Input _ -> "JSONL file of {\"text\": ...} lines (default: standard input)."
            | Output _ -> "where to write {\"text\": ..., \"ids\": [...]} lines (default: standard output)."

/// What the host reads.
type TokenizeOptions = { Tokenizer: string; Input: string option; Output: string option }

let toOptions (r: ParseResults<TokenizeArgs>) =
    { Tokenizer = r.GetResult Tokenizer; Input = r.TryGetResult Input; Output = r.TryGetResult Output }
