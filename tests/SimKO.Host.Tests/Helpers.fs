/// Shared helpers of the host tests: tiny model configs, temporary folders, tensor comparisons.
module SimKO.Host.Tests.Helpers

open System
open System.IO
open TorchSharp
open SimKO.Host.Model

/// A temporary folder removed on dispose.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), "simko-host-tests-" + Guid.NewGuid().ToString("N").Substring(0, 8))
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = if Directory.Exists path then Directory.Delete(path, true)

/// Tiny Qwen2-style config: GQA (4 query heads, 2 K/V heads), q/k/v biases, tied head.
let qwenTiny vocab =
    ModelConfig.Tiny(Architecture.Qwen2, vocab, hiddenSize = 32, layers = 2, heads = 4, kvHeads = 2, tieWordEmbeddings = true, ropeTheta = 1000000.0)

/// Tiny Llama-style config: GQA (4:1), no biases, untied head, llama3 rope scaling.
let llamaTiny vocab =
    ModelConfig.Tiny(Architecture.Llama, vocab, hiddenSize = 32, layers = 2, heads = 4, kvHeads = 1, tieWordEmbeddings = false,
                     ropeTheta = 500000.0, ropeScaling = RopeScaling(8.0, 1.0, 4.0, 64))

/// Row-major int64 ids tensor [B, T] from arrays.
let idsTensor (rows: int64[][]) =
    let b = rows.Length
    let t = rows.[0].Length
    torch.tensor(Array.concat rows).reshape(int64 b, int64 t)

/// Runs `f`, expects it to throw an 'E, and returns the exception (for checking its message).
let throws<'E when 'E :> exn> (f: unit -> unit) (what: string) : 'E =
    let outcome =
        try
            f ()
            Error(sprintf "%s: expected %s, but nothing was thrown" what typeof<'E>.Name)
        with
        | :? 'E as e -> Ok e
        | e -> Error(sprintf "%s: expected %s, got %s: %s" what typeof<'E>.Name (e.GetType().Name) e.Message)
    match outcome with
    | Ok e -> e
    | Error msg -> Expecto.Tests.failtest msg

/// Random ids [B, T] in [lo, vocab) from a seeded System.Random (torch's RNG untouched).
let randomIds (seed: int) (b: int) (t: int) (lo: int) (vocab: int) =
    let r = Random seed
    Array.init b (fun _ -> Array.init t (fun _ -> int64 (r.Next(lo, vocab))))

/// Largest absolute difference of two tensors.
let maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a - b).abs().max()
    d.ToDouble()

/// Named parameters of a module as (name, tensor) pairs.
let parameters (m: torch.nn.Module) = m.named_parameters() |> Seq.map (fun struct (n, p) -> n, (p :> torch.Tensor)) |> Seq.toList

/// The shared folder of the project (beside the repository), found from the working directory upwards.
let sharedDir =
    let rec up (d: DirectoryInfo) =
        if isNull d then None
        else
            let c = Path.Combine(d.FullName, "shared", "fixtures")
            let c2 = Path.Combine(d.FullName, "..", "shared", "fixtures")
            if Directory.Exists c then Some(Path.Combine(d.FullName, "shared"))
            elif Directory.Exists c2 then Some(Path.GetFullPath(Path.Combine(d.FullName, "..", "shared")))
            else up d.Parent
    up (DirectoryInfo(Directory.GetCurrentDirectory()))
