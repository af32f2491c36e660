/// Evaluation math (SPEC §5): unbiased pass@k, mean@n and maj@n. Plain floats: these run over
/// per-problem counts, not tensors.
module SimKO.Math.PassAtK

/// Unbiased pass@k for one problem with `n` samples of which `c` are correct:
/// 1 − C(n−c, k)/C(n, k), in the stable product form 1 − Π_{j=n−c+1..n} (1 − k/j); 1 when n − c < k.
let passAtK (n: int) (c: int) (k: int) : float =
    if n < 1 || c < 0 || c > n || k < 1 || k > n then
        invalidArg "k" (sprintf "pass@k needs 1 <= k <= n and 0 <= c <= n, got n = %d, c = %d, k = %d" n c k)
    if n - c < k then 1.0
    else
        let mutable prod = 1.0
        for j in n - c + 1 .. n do
            prod <- prod * (1.0 - float k / float j)
        1.0 - prod

/// The k values reported: 1, 2, 4, … up to n (n itself included when it is not a power of two).
let ladder (n: int) : int list =
    let powers = List.unfold (fun k -> if k <= n then Some(k, k * 2) else None) 1
    if List.contains n powers then powers else powers @ [ n ]

/// Mean of pass@k over problems, each given as (n, c).
let meanPassAtK (problems: (int * int) seq) (k: int) : float =
    problems |> Seq.map (fun (n, c) -> passAtK n c k) |> Seq.average

/// mean@n: the average fraction of correct samples (= mean pass@1).
let meanAtN (problems: (int * int) seq) : float =
    problems |> Seq.map (fun (n, c) -> float c / float n) |> Seq.average

/// maj@n for one problem: is the most frequent extracted answer correct? `samples` are
/// (answer key, correct); ties go to the answer seen first; samples with no answer (None) do not vote.
let majorityCorrect (samples: (string option * bool) seq) : bool =
    let voted = samples |> Seq.choose (fun (a, ok) -> a |> Option.map (fun a -> a, ok)) |> Seq.toArray
    if voted.Length = 0 then false
    else
        let order = voted |> Array.mapi (fun i (a, _) -> a, i) |> Array.distinctBy fst |> dict
        let a, _ =
            voted
            |> Array.countBy fst
            |> Array.maxBy (fun (a, count) -> count, -order[a])
        voted |> Array.exists (fun (x, ok) -> x = a && ok)
