from pymodbus.client import ModbusTcpClient

c = ModbusTcpClient("10.0.0.2")
print(c.read_holding_registers(0, 10))
