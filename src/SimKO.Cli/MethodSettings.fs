/// Method settings by name (`--set method.alpha=0.05`, `"method_settings": {"alpha": 0.05}` in a
/// config file, `"settings"` in a `loss` batch), over each method's own table
/// (`Methods.MethodDef.Settings`) and the common one (`Methods.commonSettings`). A value of the
/// wrong kind is reported as such, naming the setting and the method.
module SimKO.Cli.MethodSettings

open SimKO.Math
open SimKO.Math.Methods

/// Every setting of a method, its own first.
let settingsOf (m: Method) : Settings.Setting<Method> list = Methods.settingsOf m

let private find (key: string) (m: Method) =
    match settingsOf m |> List.tryFind (fun s -> s.Name = key) with
    | Some s -> Ok s
    | None -> Error(sprintf "setting '%s' does not apply to method '%s'; its settings: %s" key (name m) (settingsOf m |> List.map _.Name |> String.concat ", "))

/// Set one setting by name from its text.
let set (key: string) (value: string) (m: Method) : Result<Method, string> =
    find key m |> Result.bind (fun s ->
        match Settings.parse s.Kind (value.Trim()) with
        | Ok v -> Ok(s.Set v m)
        | Error e -> Error(sprintf "setting '%s' of method '%s': %s" key (name m) e))

/// Apply (name, text) pairs in order; every problem at once.
let apply (pairs: (string * string) list) (m: Method) : Result<Method, string list> =
    let folder (m, errors) (k, v) =
        match set k v m with
        | Ok m -> m, errors
        | Error e -> m, errors @ [ e ]
    match List.fold folder (m, []) pairs with
    | m, [] -> Ok m
    | _, errors -> Error errors

/// Every setting of a method with its typed value (written into configs).
let typedValues (m: Method) : (string * Settings.Value) list = Settings.values (settingsOf m) m

/// Every setting of a method with its value, as text (reports; `apply` reads it back).
let values (m: Method) : (string * string) list = typedValues m |> List.map (fun (k, v) -> k, Settings.show v)

/// The method's own settings with their values (those not every method shares).
let ownValues (m: Method) : (string * string) list =
    Settings.values m.Ops.OwnSettings m |> List.map (fun (k, v) -> k, Settings.show v)
