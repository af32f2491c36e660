/// Labelled comparisons: a failure prints both sides and where they differ.
module SimKO.Tests.Checks

open Expecto
open TorchSharp
open SimKO.Math.Tensors

/// The repository root (the folder holding SimKO.sln above the test binary) and its README, when found.
let readme () =
    SimKO.Data.Math.Datasets.FindRepoRoot System.AppContext.BaseDirectory
    |> Option.ofObj
    |> Option.map (fun root -> root, System.IO.File.ReadAllText(System.IO.Path.Combine(root, "README.md")))

let toArray (t: Tensor) : float[] =
    t.detach().to_type(torch.ScalarType.Float64).contiguous().data<float>().ToArray()

/// |a − b| ≤ atol + rtol·|b| elementwise, else fail naming the worst index and both values.
let allClose (what: string) (atol: float) (rtol: float) (expected: float[]) (actual: float[]) =
    Expect.equal actual.Length expected.Length (sprintf "%s: lengths differ" what)
    let mutable worst = -1
    let mutable worstExcess = 0.0
    for i in 0 .. expected.Length - 1 do
        let e, a = expected.[i], actual.[i]
        let excess = abs (a - e) - (atol + rtol * abs e)
        if System.Double.IsNaN a || System.Double.IsNaN e || excess > worstExcess then
            if worst < 0 || excess > worstExcess || System.Double.IsNaN excess then
                worst <- i
                worstExcess <- (if System.Double.IsNaN excess then infinity else excess)
    if worst >= 0 then
        failtestf "%s: at index %d expected %.12g but got %.12g (tolerance %g + %g·|expected|)"
            what worst expected.[worst] actual.[worst] atol rtol

let tensorsClose what atol rtol (expected: Tensor) (actual: Tensor) =
    allClose what atol rtol (toArray expected) (toArray actual)
