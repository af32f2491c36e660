/// `simko train`: one RL run from a JSON config plus overrides.
module SimKO.Cli.TrainArgs

open Argu

type TrainArgs =
    | [<AltCommandLine("-c")>] Config of path: string
    | Set of assignment: string
    | Resume
    | Skip_Bad_Rows
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Config _ -> "JSON config file whose keys are the settings below (and \"method_settings\": {…})."
            | Set _ -> "override one setting, name=value (repeatable; applied after the config file). Settings are listed below."
            | Resume -> "continue from the newest complete checkpoint in <out>/checkpoints (verified by checksum)."
            | Skip_Bad_Rows -> "same as --set skip_bad_rows=true: skip malformed dataset rows, each logged and listed in <out>/skipped_rows.txt."

type TrainOptions = { Config: string option; Sets: string list; Resume: bool }

let toOptions (r: ParseResults<TrainArgs>) =
    { Config = r.TryGetResult Config
      Sets = r.GetResults Set @ (if r.Contains Skip_Bad_Rows then [ "skip_bad_rows=true" ] else [])
      Resume = r.Contains Resume }

/// Config file, then overrides, then validation: the typed spec or every problem at once.
let resolveWith (methods: SimKO.Math.Methods.Method list) (o: TrainOptions) : Result<RunSpec.TrainSpec, string list> =
    let fromFile =
        match o.Config with
        | Some path -> TrainConfig.readFile path
        | None -> Ok []
    let sets =
        o.Sets |> List.map (fun s ->
            match s.IndexOf '=' with
            | i when i > 0 -> Ok(s.Substring(0, i).Trim(), s.Substring(i + 1).Trim())
            | _ -> Error(sprintf "--set %s: expected name=value" s))
    let setErrors = sets |> List.choose (function Error e -> Some e | Ok _ -> None)
    let filePairs, fileErrors =
        match fromFile with
        | Ok pairs -> pairs, []
        | Error es -> [], es
    let all = filePairs @ (sets |> List.choose (function Ok p -> Some p | Error _ -> None))
    match fileErrors @ setErrors, TrainConfig.resolvePairsWith methods all with
    | [], Ok spec -> Ok spec
    | early, Ok _ -> Error early
    | early, Error es -> Error(early @ es)

/// `resolveWith` the shipped methods (`Methods.all`).
let resolve (o: TrainOptions) = resolveWith SimKO.Math.Methods.all o
