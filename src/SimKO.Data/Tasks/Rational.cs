namespace SimKO.Data.Tasks;

/// <summary>An exact fraction with a positive denominator, always reduced. Task settings bound the numbers so
/// that numerators and denominators stay far from overflow.</summary>
public readonly record struct Rational(long Num, long Den)
{
    /// <summary>The whole number <paramref name="n"/>.</summary>
    public static Rational Of(long n) => new(n, 1);

    /// <summary>num/den reduced, with a positive denominator.</summary>
    /// <exception cref="DivideByZeroException"><paramref name="den"/> is zero.</exception>
    public static Rational Create(long num, long den)
    {
        if (den == 0) throw new DivideByZeroException();
        if (den < 0) { num = -num; den = -den; }
        long g = Gcd(Math.Abs(num), den);
        return g <= 1 ? new Rational(num, den) : new Rational(num / g, den / g);
    }

    static long Gcd(long a, long b) { while (b != 0) (a, b) = (b, a % b); return a == 0 ? 1 : a; }

    /// <summary>Whether the value is a whole number.</summary>
    public bool IsInteger => Den == 1;

    /// <summary>Exact sum, difference and product (checked: overflow throws instead of wrapping).</summary>
    // Integer fast paths skip the gcd: enumerating Countdown's problem space is mostly integer arithmetic.
    public static Rational operator +(Rational a, Rational b) =>
        a.Den == 1 && b.Den == 1 ? new(checked(a.Num + b.Num), 1) : Create(checked(a.Num * b.Den + b.Num * a.Den), checked(a.Den * b.Den));
    public static Rational operator -(Rational a, Rational b) =>
        a.Den == 1 && b.Den == 1 ? new(checked(a.Num - b.Num), 1) : Create(checked(a.Num * b.Den - b.Num * a.Den), checked(a.Den * b.Den));
    public static Rational operator *(Rational a, Rational b) =>
        a.Den == 1 && b.Den == 1 ? new(checked(a.Num * b.Num), 1) : Create(checked(a.Num * b.Num), checked(a.Den * b.Den));

    /// <summary>a / b, or false when b is zero.</summary>
    public static bool TryDivide(Rational a, Rational b, out Rational q)
    {
        if (b.Num == 0) { q = default; return false; }
        if (a.Den == 1 && b.Den == 1 && a.Num % b.Num == 0) { q = new(a.Num / b.Num, 1); return true; }
        q = Create(checked(a.Num * b.Den), checked(a.Den * b.Num));
        return true;
    }

    /// <summary>a op b for op in + - * /; false on division by zero.</summary>
    public static bool TryApply(Rational a, char op, Rational b, out Rational r)
    {
        switch (op)
        {
            case '+': r = a + b; return true;
            case '-': r = a - b; return true;
            case '*': r = a * b; return true;
            case '/': return TryDivide(a, b, out r);
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "expected + - * /");
        }
    }

    /// <summary><c>n</c> for whole numbers, else <c>num/den</c>.</summary>
    public override string ToString() => Den == 1 ? Num.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{Num}/{Den}";
}
