package store

import (
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
)

// Source addresses are stored in two columns:
//
//	src_ip  UBIGINT   IPv4: the 32-bit number of the address.
//	                  IPv6: a 64-bit hash of the address with bit 63 set.
//	src_ip6 UHUGEINT  IPv6: the address; NULL for IPv4.
//
// so that the unique-host counts, count(DISTINCT src_ip), run on 64-bit
// integers. They are exact for IPv4; two of n IPv6 hosts share a hash with a
// probability of about n²/2⁶⁴, one in 500,000 for 6 million IPv6 hosts,
// which would undercount by one. An IPv4-mapped IPv6 address is the IPv4
// host.
//
// Other addresses (dst_ip) are one UHUGEINT, IPv4 as ::ffff:a.b.c.d. An
// IPv4 address fits in 64 bits there too, so the driver takes it as a
// uint64; only IPv6 goes through math/big.

// ipv6Mark is set in src_ip for IPv6 hosts; IPv4 numbers never reach it.
const ipv6Mark = 1 << 63

// srcIPValues returns the values of src_ip and src_ip6 for a.
func srcIPValues(a netip.Addr) (ip, ip6 driver.Value) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])), nil
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return ipv6Hash(hi, lo) | ipv6Mark, new(big.Int).SetBytes(b[:])
}

// ipv6Hash mixes the two halves of an IPv6 address with the finaliser of
// SplitMix64. It must never change: stored rows depend on it.
func ipv6Hash(hi, lo uint64) uint64 {
	return mix64(hi ^ mix64(lo^0x9e3779b97f4a7c15))
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// srcIPFromValues reads back what srcIPValues stored.
func srcIPFromValues(ip uint64, ip6 any) (netip.Addr, error) {
	if ip6 != nil {
		return ipFromValue(ip6)
	}
	if ip >= 1<<32 {
		return netip.Addr{}, fmt.Errorf("source address: %#x is not an IPv4 number and src_ip6 is NULL", ip)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(ip))
	return netip.AddrFrom4(b), nil
}

// ipValue returns the UHUGEINT driver value of a, NULL for an invalid
// address.
func ipValue(a netip.Addr) driver.Value {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return uint64(0xffff)<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return new(big.Int).SetBytes(b[:])
}

// ipFromValue turns a UHUGEINT read from the database back into an address.
func ipFromValue(v any) (netip.Addr, error) {
	var b [16]byte
	switch v := v.(type) {
	case nil:
		return netip.Addr{}, nil
	case *big.Int:
		if v.Sign() < 0 || v.BitLen() > 128 {
			return netip.Addr{}, fmt.Errorf("address %s out of range", v)
		}
		v.FillBytes(b[:])
	case uint64:
		binary.BigEndian.PutUint64(b[8:], v)
	default:
		return netip.Addr{}, fmt.Errorf("address of unexpected type %T", v)
	}
	return netip.AddrFrom16(b).Unmap(), nil
}
