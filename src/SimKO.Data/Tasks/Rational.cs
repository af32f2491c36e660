using System.Numerics;

namespace SimKO.Data.Tasks;

/// <summary>Exact rational numbers (reduced, positive denominator) for evaluating task expressions.</summary>
public readonly record struct Rational
{
    public BigInteger Num { get; }
    public BigInteger Den { get; }

    public Rational(BigInteger num, BigInteger den)
    {
        if (den.IsZero) throw new DivideByZeroException();
        if (den.Sign < 0) { num = -num; den = -den; }
        var g = BigInteger.GreatestCommonDivisor(num, den);
        if (!g.IsZero && !g.IsOne) { num /= g; den /= g; }
        Num = num; Den = den;
    }

    public static implicit operator Rational(int n) => new(n, 1);
    public static Rational operator +(Rational a, Rational b) => new(a.Num * b.Den + b.Num * a.Den, a.Den * b.Den);
    public static Rational operator -(Rational a, Rational b) => new(a.Num * b.Den - b.Num * a.Den, a.Den * b.Den);
    public static Rational operator *(Rational a, Rational b) => new(a.Num * b.Num, a.Den * b.Den);
    public static Rational operator /(Rational a, Rational b) => b.Num.IsZero ? throw new DivideByZeroException() : new(a.Num * b.Den, a.Den * b.Num);
    public bool IsInteger => Den.IsOne;
    public override string ToString() => Den.IsOne ? Num.ToString() : $"{Num}/{Den}";
}
