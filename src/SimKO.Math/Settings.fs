/// The one settings engine: a setting of a record 'R is declared once, with its name, what it is,
/// where its default comes from, the kind of value it takes (which is its parser) and how it reads
/// and changes the record. Method settings (`Methods.MethodDef`) and training settings
/// (`SimKO.Cli.TrainConfig`) are tables of these; defaults, `--help`, `--set`, config files and
/// `config.json` all come from the table. Pure: text in, typed values out, no I/O.
module SimKO.Math.Settings

open System
open System.Globalization

/// The kind of value a setting takes; it decides how a text (or a JSON value) is parsed.
type Kind =
    /// a finite floating-point number.
    | Number
    /// an integer; a number text is accepted iff it is integral ("3", "3.0", "1e3"), "2.5" is not.
    | Integer
    /// true/false (also 1/0, yes/no).
    | Flag
    /// any text ("" where the setting is optional: none).
    | Text
    /// one of these names.
    | OneOf of string list
    /// a number, or "off" (also "" and JSON null).
    | NumberOrOff
    /// a text checked by its own parser (what it expects, the parser): a device, an optional dtype.
    | Parsed of expects: string * parse: (string -> Result<string, string>)

/// A setting's value, typed.
type Value =
    | Num of float
    | Int of int
    | Bool of bool
    | Str of string
    | Off

/// One setting of a record 'R.
type Setting<'R> =
    { Name: string
      /// what it is.
      Doc: string
      /// where its default comes from (a paper, a reference implementation, these notes); "" if nowhere.
      Source: string
      Kind: Kind
      Get: 'R -> Value
      /// the record with the setting changed; the value is of the setting's kind (see `parse`).
      Set: Value -> 'R -> 'R }

let private inv (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

/// The one number parser: invariant culture, finite values only.
let parseNumber (text: string) : Result<float, string> =
    match Double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Double.IsFinite v -> Ok v
    | _ -> Error(sprintf "'%s' is not a number" text)

/// An integer is a number that is integral and fits in 32 bits: "3" and "3.0" are 3, "2.5" is an error.
let parseInteger (text: string) : Result<int, string> =
    match parseNumber text with
    | Ok v when v = Math.Round v && abs v <= 2147483647.0 -> Ok(int v)
    | Ok _ -> Error(sprintf "%s is not an integer" text)
    | Error e -> Error e

/// The number as an integer iff it is integral (the same rule as `parseInteger`).
let integerOf (v: float) : Result<int, string> =
    if Double.IsFinite v && v = Math.Round v && abs v <= 2147483647.0 then Ok(int v) else Error(sprintf "%s is not an integer" (inv v))

let parseFlag (text: string) : Result<bool, string> =
    match text.Trim().ToLowerInvariant() with
    | "true" | "1" | "yes" -> Ok true
    | "false" | "0" | "no" -> Ok false
    | _ -> Error(sprintf "'%s' is not true/false" text)

/// A text as a value of a kind, or what is wrong with it.
let parse (kind: Kind) (text: string) : Result<Value, string> =
    match kind with
    | Number -> parseNumber text |> Result.map Num
    | Integer -> parseInteger text |> Result.map Int
    | Flag -> parseFlag text |> Result.map Bool
    | Text -> Ok(Str text)
    | OneOf names ->
        if List.contains text names then Ok(Str text)
        else Error(sprintf "'%s' is not one of %s" text (String.concat ", " names))
    | NumberOrOff ->
        if text = "off" || text = "" then Ok Off else parseNumber text |> Result.map Num
    | Parsed (_, p) -> p text |> Result.map Str

/// A value as text (help tables, reports; `parse` reads it back).
let show (v: Value) : string =
    match v with
    | Num x -> inv x
    | Int i -> string i
    | Bool b -> if b then "true" else "false"
    | Str s -> s
    | Off -> "off"

/// Set one setting of a table from its text: the changed record, or an error naming the setting.
let setText (table: Setting<'R> list) (name: string) (text: string) (r: 'R) : Result<'R, string> =
    match table |> List.tryFind (fun s -> s.Name = name) with
    | Some s -> parse s.Kind (text.Trim()) |> Result.map (fun v -> s.Set v r) |> Result.mapError (sprintf "%s: %s" name)
    | None -> Error(sprintf "unknown setting '%s'; valid: %s" name (table |> List.map _.Name |> String.concat ", "))

/// Every setting of a table with its value in a record.
let values (table: Setting<'R> list) (r: 'R) : (string * Value) list = table |> List.map (fun s -> s.Name, s.Get r)

/// A table over a part of a bigger record (e.g. the common settings inside a method).
let lift (get: 'Outer -> 'Inner) (put: 'Inner -> 'Outer -> 'Outer) (table: Setting<'Inner> list) : Setting<'Outer> list =
    table |> List.map (fun s -> { Name = s.Name; Doc = s.Doc; Source = s.Source; Kind = s.Kind; Get = get >> s.Get; Set = fun v o -> put (s.Set v (get o)) o })

// Typed helpers for declaring a setting; the getter and setter see the setting's own type.
let private asNum v = match v with Num x -> x | Int i -> float i | other -> failwithf "expected a number, got %A" other
let private asInt v = match v with Int i -> i | Num x -> int x | other -> failwithf "expected an integer, got %A" other
let private asBool v = match v with Bool b -> b | other -> failwithf "expected true/false, got %A" other
let private asStr v = match v with Str s -> s | Off -> "" | other -> failwithf "expected text, got %A" other

let number name doc source (get: 'R -> float) (set: float -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Number; Get = get >> Num; Set = fun v r -> set (asNum v) r }
let integer name doc source (get: 'R -> int) (set: int -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Integer; Get = get >> Int; Set = fun v r -> set (asInt v) r }
let flag name doc source (get: 'R -> bool) (set: bool -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Flag; Get = get >> Bool; Set = fun v r -> set (asBool v) r }
let text name doc source (get: 'R -> string) (set: string -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Text; Get = get >> Str; Set = fun v r -> set (asStr v) r }
/// A text checked by its own parser (which returns the text normalised, or what is wrong).
let parsed name doc source (expects: string) (parse: string -> Result<'T, string>) (show: 'T -> string) (get: 'R -> 'T) (set: 'T -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Parsed(expects, fun t -> parse t |> Result.map show); Get = get >> show >> Str
      Set = fun v r -> match parse (asStr v) with Ok x -> set x r | Error e -> failwith e }
/// Optional text: "" (or JSON null) is none.
let optText name doc source (get: 'R -> string option) (set: string option -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = Text; Get = (fun r -> Str(defaultArg (get r) ""))
      Set = fun v r -> set (match asStr v with "" -> None | s -> Some s) r }
/// One of the cases of a union, named by `nameOf`.
let choice name doc source (nameOf: 'T -> string) (cases: 'T list) (get: 'R -> 'T) (set: 'T -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = OneOf(cases |> List.map nameOf); Get = get >> nameOf >> Str
      Set = fun v r -> set (cases |> List.find (fun c -> nameOf c = asStr v)) r }
let numberOrOff name doc source (get: 'R -> float option) (set: float option -> 'R -> 'R) : Setting<'R> =
    { Name = name; Doc = doc; Source = source; Kind = NumberOrOff; Get = (fun r -> match get r with Some x -> Num x | None -> Off)
      Set = fun v r -> set (match v with Off -> None | v -> Some(asNum v)) r }
